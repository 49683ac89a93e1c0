use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_view::Args::parse();
    lensfind_core::cli::main("lens-view", || lens_view::run(args))
}
