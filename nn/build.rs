//! Builds the C++ shim (csrc/) against the torch wheel's headers, and bakes an rpath to the wheel's lib directory
//! into lensfind-nn's tests and examples so they run without LD_LIBRARY_PATH.
//!
//! lensfind-nn depends on torch-sys directly to learn the lib directory (DEP_TCH_LIBTORCH_LIB) and passes it on to
//! its dependents as DEP_LENSFIND_NN_LIBTORCH_LIB (its `links` key), whose build script is rpath.rs.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys reports its lib dir");
    println!("cargo:libtorch_lib={dir}");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    build_shim(&PathBuf::from(dir));
}

fn build_shim(lib_dir: &Path) {
    let root = lib_dir.parent().expect("torch/lib has a parent");
    let base = || {
        let mut b = cc::Build::new();
        b.cpp(true)
            .pic(true)
            .warnings(false)
            .include(root.join("include"))
            .include(root.join("include/torch/csrc/api/include"))
            .flag("-std=c++20")
            .flag("-D_GLIBCXX_USE_CXX11_ABI=1");
        b
    };
    for f in ["csrc/shim.cpp", "csrc/dist.cpp", "csrc/dist_nccl.cpp"] {
        println!("cargo:rerun-if-changed={f}");
    }
    // c10d's Gloo process group; the gloo headers come from Debian's libgloo-dev (the symbols from libtorch_cpu).
    let mut shim = base();
    shim.file("csrc/shim.cpp").file("csrc/dist.cpp").define("USE_C10D_GLOO", None);
    // ProcessGroupNCCL when the wheel has CUDA and its nvidia packages have the CUDA and NCCL headers.
    let mut nccl = base();
    nccl.file("csrc/dist_nccl.cpp");
    let site = root.parent().expect("torch has a parent");
    let cuda_include = site.join("nvidia/cu13/include");
    let nccl_include = site.join("nvidia/nccl/include");
    let has_cuda = lib_dir.join("libtorch_cuda.so").exists()
        && cuda_include.join("crt/host_defines.h").exists()
        && nccl_include.join("nccl.h").exists();
    if has_cuda {
        nccl.define("USE_C10D_NCCL", None).define("USE_CUDA", None).include(&cuda_include).include(&nccl_include);
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    } else {
        println!(
            "cargo:warning=building without the NCCL backend: no CUDA/NCCL headers under {} (pip install \
             \"cuda-toolkit[crt,cccl]==13.0.3\" in the .venv)",
            site.display()
        );
    }
    shim.compile("lensfind_shim");
    nccl.compile("lensfind_nccl");
}
