use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_ensemble::Args::parse();
    lensfind_core::cli::main("lens-ensemble", || lens_ensemble::run(args))
}
