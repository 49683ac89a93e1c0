use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_synth::Args::parse();
    lensfind_core::cli::main_worded("lens-synth", &lens_synth::word_with_flags, || lens_synth::run(args))
}
