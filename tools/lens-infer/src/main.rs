use clap::Parser;

fn main() -> std::process::ExitCode {
    lensfind_nn::alloc::keep_freed_memory();
    let args = lens_infer::Args::parse();
    lensfind_core::cli::main_worded("lens-infer", &lensfind_nn::cli::word_with_flags, || lens_infer::run(args))
}
