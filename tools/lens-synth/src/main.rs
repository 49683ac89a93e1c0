use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_synth::Args::parse();
    lensfind_core::cli::main("lens-synth", || lens_synth::run(args))
}
