//! Builds the C++ shim (csrc/) against the torch wheel's headers, and bakes an rpath to the wheel's lib directory
//! into lensfind-nn's tests and examples so they run without LD_LIBRARY_PATH.
//!
//! lensfind-nn depends on torch-sys directly to learn the lib directory (DEP_TCH_LIBTORCH_LIB) and passes it on to
//! its dependents as DEP_LENSFIND_NN_LIBTORCH_LIB (its `links` key), whose build script is rpath.rs.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys reports its lib dir");
    println!("cargo:libtorch_lib={dir}");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    build_shim(&PathBuf::from(dir));
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
