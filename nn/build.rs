//! Shared by every crate of the workspace that links libtorch (`build = "../nn/build.rs"` and the like): bakes an
//! rpath to the torch wheel's lib directory into binaries and tests, so they run without LD_LIBRARY_PATH.
//!
//! lensfind-nn depends on torch-sys directly to learn that directory (DEP_TCH_LIBTORCH_LIB) and passes it on to
//! its dependents as DEP_LENSFIND_NN_LIBTORCH_LIB (its `links` key); they must depend on lensfind-nn directly.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let own = std::env::var("DEP_TCH_LIBTORCH_LIB").ok();
    if let Some(dir) = &own {
        println!("cargo:libtorch_lib={dir}");
    }
    if let Some(dir) = own.or_else(|| std::env::var("DEP_LENSFIND_NN_LIBTORCH_LIB").ok()) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
