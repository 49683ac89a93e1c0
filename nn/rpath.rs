//! The build script of every crate that links libtorch through lensfind-nn (`build = "../nn/rpath.rs"` and the
//! like): bakes an rpath to the torch wheel's lib directory into its binaries and tests, so they run without
//! LD_LIBRARY_PATH, and links libtorch_cuda even though no symbol of it is called: rustc links with --as-needed,
//! which would drop it, and without it libtorch registers no CUDA backend (no GPU, whatever the machine has). The
//! directory comes from lensfind-nn's build script (its `links` key), so the crate must depend on lensfind-nn
//! directly.

fn main() {
    if let Ok(dir) = std::env::var("DEP_LENSFIND_NN_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        if std::path::Path::new(&dir).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--push-state,--no-as-needed,-ltorch_cuda,--pop-state");
        }
    }
}
