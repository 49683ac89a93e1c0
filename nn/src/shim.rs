//! Safe wrappers over csrc/shim.cpp.

use std::ffi::c_int;

use tch::Device;

extern "C" {
    fn lensfind_autocast_set(device: c_int, enabled: c_int, dtype: c_int) -> c_int;
    fn lensfind_autocast_enable(device: c_int, enabled: c_int) -> c_int;
    fn lensfind_autocast_increment_nesting() -> c_int;
    fn lensfind_autocast_decrement_nesting();
    fn lensfind_inference_mode_enter() -> *mut std::ffi::c_void;
    fn lensfind_inference_mode_exit(guard: *mut std::ffi::c_void);
}

/// Runs `f` with autocast off for `device` (inside an autocast region): for the classifier head, so that logits
/// keep float32 resolution; in bfloat16 they fall on a grid coarse enough to tie many scores.
pub fn without_autocast<T>(device: Device, f: impl FnOnce() -> T) -> T {
    struct Restore(c_int, c_int);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: plain libtorch state setter, undoing the one below on this thread.
            unsafe { lensfind_autocast_enable(self.0, self.1) };
        }
    }
    let dev = c_int::from(device.is_cuda());
    // SAFETY: plain libtorch state setter; Restore undoes it.
    let _restore = Restore(dev, unsafe { lensfind_autocast_enable(dev, 0) });
    f()
}

/// Runs `f` in libtorch's inference mode (torch.inference_mode): no gradients and no autograd bookkeeping.
/// Tensors made inside cannot take part in autograd later.
pub fn inference_mode<T>(f: impl FnOnce() -> T) -> T {
    struct Guard(*mut std::ffi::c_void);
    impl Drop for Guard {
        fn drop(&mut self) {
            // SAFETY: the pointer came from lensfind_inference_mode_enter on this thread and is freed once.
            unsafe { lensfind_inference_mode_exit(self.0) }
        }
    }
    // SAFETY: allocates a thread-local RAII guard, released by Guard's drop on this thread.
    let _guard = Guard(unsafe { lensfind_inference_mode_enter() });
    f()
}

/// The reduced precision of an autocast region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutocastDtype {
    BFloat16,
    Float16,
}

/// Runs `f` with libtorch's autocast enabled for `device` in `dtype`, as `torch.autocast(device, dtype)` does:
/// matmuls and convolutions in reduced precision, reductions and norms in float32.
/// The state is libtorch's (thread-local); it is restored when `f` returns or panics.
pub fn autocast<T>(device: Device, dtype: AutocastDtype, f: impl FnOnce() -> T) -> T {
    struct Restore {
        dev: c_int,
        prev: c_int,
        dt: c_int,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: plain libtorch state setters, undoing what autocast() did on this thread.
            unsafe {
                lensfind_autocast_decrement_nesting();
                lensfind_autocast_set(self.dev, self.prev, self.dt);
            }
        }
    }
    let dev = c_int::from(device.is_cuda());
    let dt = c_int::from(dtype == AutocastDtype::Float16);
    // SAFETY: plain libtorch state setters; Restore undoes them.
    let prev = unsafe { lensfind_autocast_set(dev, 1, dt) };
    unsafe { lensfind_autocast_increment_nesting() };
    let _restore = Restore { dev, prev, dt };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn cpu_autocast_runs_matmuls_in_bfloat16() {
        let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
        let inside = autocast(Device::Cpu, AutocastDtype::BFloat16, || a.matmul(&a));
        assert_eq!(inside.kind(), Kind::BFloat16);
        // Losses are computed in float32 under autocast, as in PyTorch.
        let loss = autocast(Device::Cpu, AutocastDtype::BFloat16, || a.matmul(&a).mse_loss(&a, tch::Reduction::Mean));
        assert_eq!(loss.kind(), Kind::Float);
        assert_eq!(a.matmul(&a).kind(), Kind::Float, "restored after the region");
        let r = std::panic::catch_unwind(|| autocast(Device::Cpu, AutocastDtype::BFloat16, || panic!("boom")));
        assert!(r.is_err());
        assert_eq!(a.matmul(&a).kind(), Kind::Float, "restored after a panic");
        let both = autocast(Device::Cpu, AutocastDtype::BFloat16, || {
            (without_autocast(Device::Cpu, || a.matmul(&a)).kind(), a.matmul(&a).kind())
        });
        assert_eq!(both, (Kind::Float, Kind::BFloat16), "off inside, back on after");
    }

    #[test]
    fn inference_mode_records_no_graph() {
        let w = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = inference_mode(|| &w * 2.0);
        assert!(!y.requires_grad());
        assert!((&w * 2.0).requires_grad(), "autograd is back after the region");
    }
}
