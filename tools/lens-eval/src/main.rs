use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_eval::Args::parse();
    lensfind_core::cli::main_worded("lens-eval", &lens_eval::word_with_flags, || lens_eval::run(args))
}
