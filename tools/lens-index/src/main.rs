fn main() -> std::process::ExitCode {
    let (args, roots) = lens_index::parse();
    lensfind_core::cli::main("lens-index", || lens_index::run(args, roots))
}
