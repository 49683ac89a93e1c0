fn main() -> std::process::ExitCode {
    lensfind_nn::alloc::keep_freed_memory();
    let (args, matches) = lens_train::parse();
    lensfind_core::cli::main("lens-train", || lens_train::run(args, &matches))
}
