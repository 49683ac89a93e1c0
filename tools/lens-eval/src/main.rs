use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_eval::Args::parse();
    lensfind_core::cli::main("lens-eval", || lens_eval::run(args))
}
