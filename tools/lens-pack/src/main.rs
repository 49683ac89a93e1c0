use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_pack::Args::parse();
    lensfind_core::cli::main("lens-pack", || lens_pack::run(args))
}
