//! Builds the C++ shim (csrc/) against the torch wheel's headers, and bakes an rpath to the wheel's lib directory
//! into binaries and tests so they run without LD_LIBRARY_PATH.
//!
//! Also used as the build script of every crate that links libtorch (`build = "../nn/build.rs"` and the like):
//! lensfind-nn depends on torch-sys directly to learn the lib directory (DEP_TCH_LIBTORCH_LIB) and passes it on to
//! its dependents as DEP_LENSFIND_NN_LIBTORCH_LIB (its `links` key); they must depend on lensfind-nn directly.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        // lensfind-nn itself.
        println!("cargo:libtorch_lib={dir}");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        build_shim(&PathBuf::from(dir));
    } else if let Ok(dir) = std::env::var("DEP_LENSFIND_NN_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

fn build_shim(lib_dir: &std::path::Path) {
    let root = lib_dir.parent().expect("torch/lib has a parent");
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++20")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .file("csrc/shim.cpp")
        .compile("lensfind_shim");
}
