use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = lens_view::Args::parse();
    lensfind_core::cli::main_worded("lens-view", &lens_view::word_with_flags, || lens_view::run(args))
}
