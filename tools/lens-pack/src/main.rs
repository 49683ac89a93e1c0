use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_pack::Args::parse();
    lensfind_core::cli::main_worded("lens-pack", &lens_pack::word_with_flags, || lens_pack::run(args))
}
