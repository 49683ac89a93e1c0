//! libtorch's errors (a kernel that refuses its arguments, a GPU out of memory) reach Rust as panics inside tch's
//! methods. Where lensfind can go on without the work that failed (an autotune candidate) or can say what to do
//! instead (a batch too large for the GPU), [`catch`] turns such a panic into an error, without the panic message
//! and backtrace that the default hook would print.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use anyhow::{anyhow, Result};

thread_local! {
    /// Set while [`catch`] runs on this thread: its panics are reported as errors, not printed.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic into an error that carries the panic's message (libtorch's error text for tch's
/// panics). The state `f` touched may be half-updated: use this only where that state is then dropped.
pub(crate) fn catch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                default(info);
            }
        }));
    });
    let outer = CATCHING.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(outer));
    result.unwrap_or_else(|payload| Err(anyhow!("{}", message(payload.as_ref()))))
}

/// The text of a panic's payload. tch's panics (`called `Result::unwrap()` on an `Err` value: Torch("...")`) give
/// libtorch's message alone, without the wrapping and the backtrace that follows it.
pub(crate) fn message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<String>() {
        s.as_str()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else {
        return "a panic without a message".to_string();
    };
    let Some((_, torch)) = text.split_once("Torch(\"") else { return text.to_string() };
    // libtorch's message ends where its backtrace starts (an escaped newline in tch's Debug formatting).
    let end = ["\\nException raised from", "\\n", "\")"].iter().filter_map(|m| torch.find(m)).min();
    torch[..end.unwrap_or(torch.len())].trim().to_string()
}

/// Whether an error from libtorch says that the device ran out of memory (CUDA's caching allocator: "CUDA out of
/// memory"; a CPU allocation: "DefaultCPUAllocator: can't allocate memory").
pub(crate) fn is_out_of_memory(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("out of memory") || text.contains("can't allocate memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tch_panics_give_libtorchs_message_without_the_backtrace() {
        let payload: Box<dyn std::any::Any + Send> = Box::new(String::from(
            "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. Tried to allocate 11.27 GiB. \
             GPU 0 has a total capacity of 139.80 GiB\\nException raised from malloc at CUDACachingAllocator.cpp\\n\
             frame #0: c10::Error::Error\")",
        ));
        assert_eq!(
            message(payload.as_ref()),
            "CUDA out of memory. Tried to allocate 11.27 GiB. GPU 0 has a total capacity of 139.80 GiB"
        );
        let plain: Box<dyn std::any::Any + Send> = Box::new("index out of bounds");
        assert_eq!(message(plain.as_ref()), "index out of bounds");
    }

    #[test]
    fn a_panic_becomes_an_error_with_its_message_and_ok_passes_through() {
        let e = catch::<()>(|| panic!("Torch(\"CUDA out of memory. Tried to allocate 2.00 GiB\")")).unwrap_err();
        assert!(format!("{e}").contains("Tried to allocate 2.00 GiB"), "{e}");
        assert!(is_out_of_memory(&e));
        assert_eq!(catch(|| Ok(7)).unwrap(), 7);
        let e = catch::<()>(|| Err(anyhow!("plain error"))).unwrap_err();
        assert_eq!(format!("{e}"), "plain error");
        assert!(!is_out_of_memory(&e));
        // A real libtorch error (shapes that cannot be multiplied) through tch's panicking method.
        let e = catch(|| {
            let a = tch::Tensor::zeros([2, 3], (tch::Kind::Float, tch::Device::Cpu));
            Ok(a.matmul(&a))
        })
        .unwrap_err();
        assert!(format!("{e}").contains("cannot be multiplied"), "{e}");
    }
}
