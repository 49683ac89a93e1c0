use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_infer::Args::parse();
    lensfind::cli::main("lens-infer", || lens_infer::run(args))
}
