use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_ensemble::Args::parse();
    lensfind_core::cli::main_worded("lens-ensemble", &lens_ensemble::word_with_flags, || lens_ensemble::run(args))
}
