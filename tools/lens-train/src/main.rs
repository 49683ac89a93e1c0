fn main() -> std::process::ExitCode {
    lensfind_nn::alloc::keep_freed_memory();
    let (args, matches) = lens_train::parse();
    lensfind_core::cli::main_worded("lens-train", &lensfind_nn::cli::word_with_flags, || {
        lens_train::run(args, &matches)
    })
}
