//! The C allocator tuned for libtorch on a CPU.
//!
//! libtorch's CPU tensors come straight from malloc. glibc serves blocks above its mmap threshold (128 KiB at
//! first, raised as such blocks are freed) with fresh mmaps, and returns the top of the heap to the system once
//! 128 KiB of it are free; a training step allocates and frees the same few-megabyte activations every step, so
//! every step pays for new pages (page faults, zeroing) again. Serving everything up to 32 MiB from the heap and
//! keeping freed memory makes later steps reuse those pages: training was ~15% faster for convnext_atto at batch
//! 128 on 2 cores (BENCHMARKS.md), for peak memory that was reached anyway.

/// Keeps freed memory in the process for reuse (see the module's doc); a no-op where the C library is not glibc.
/// Call it first thing in a tool's `main`, before any thread starts.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's mallopt parameters (malloc.h).
        const M_TRIM_THRESHOLD: libc::c_int = -1;
        const M_MMAP_THRESHOLD: libc::c_int = -3;
        // The largest mmap threshold glibc accepts on 64-bit systems (half its 64 MiB heap); it refuses more.
        const MMAP_THRESHOLD: libc::c_int = 32 << 20;
        // SAFETY: mallopt only sets two of glibc's malloc parameters, which it reads under its own locks; it takes
        // plain integers and its failure (a value glibc refuses) is a return value we may ignore: the defaults stay.
        unsafe {
            libc::mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(M_TRIM_THRESHOLD, libc::c_int::MAX);
        }
    }
}
