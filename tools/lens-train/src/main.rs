fn main() -> std::process::ExitCode {
    let (args, matches) = lens_train::parse();
    lensfind::cli::main("lens-train", || lens_train::run(args, &matches))
}
