//! Safe wrappers over csrc/shim.cpp.

use std::ffi::c_int;

use tch::{Device, Tensor};

extern "C" {
    fn lensfind_autocast_set(device: c_int, enabled: c_int, dtype: c_int) -> c_int;
    fn lensfind_autocast_enable(device: c_int, enabled: c_int) -> c_int;
    fn lensfind_autocast_increment_nesting() -> c_int;
    fn lensfind_autocast_decrement_nesting();
    fn lensfind_fused_adamw(
        params: *const *mut torch_sys::C_tensor,
        grads: *const *mut torch_sys::C_tensor,
        exp_avgs: *const *mut torch_sys::C_tensor,
        exp_avg_sqs: *const *mut torch_sys::C_tensor,
        steps: *const *mut torch_sys::C_tensor,
        n: c_int,
        lr: *mut torch_sys::C_tensor,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        found_inf: *mut torch_sys::C_tensor,
        err: *mut std::ffi::c_char,
        err_len: c_int,
    ) -> c_int;
    fn lensfind_cuda_event_record(device: c_int) -> *mut std::ffi::c_void;
    fn lensfind_event_wait_and_free(event: *mut std::ffi::c_void);
    fn lensfind_total_norm(tensors: *const *mut torch_sys::C_tensor, n: c_int) -> *mut torch_sys::C_tensor;
    fn lensfind_foreach_mul_(
        tensors: *const *mut torch_sys::C_tensor,
        n: c_int,
        factor: *mut torch_sys::C_tensor,
    ) -> c_int;
    fn lensfind_foreach_lerp_(
        selves: *const *mut torch_sys::C_tensor,
        ends: *const *mut torch_sys::C_tensor,
        n: c_int,
        weight: f64,
    ) -> c_int;
    fn lensfind_reset_grad(t: *mut torch_sys::C_tensor);
    fn lensfind_pin_memory(
        t: *mut torch_sys::C_tensor,
        err: *mut std::ffi::c_char,
        err_len: c_int,
    ) -> *mut torch_sys::C_tensor;
    fn lensfind_inference_mode_enter() -> *mut std::ffi::c_void;
    fn lensfind_inference_mode_exit(guard: *mut std::ffi::c_void);
    fn lensfind_grad_mode_enabled() -> c_int;
    fn lensfind_autocast_is_enabled(device: c_int) -> c_int;
    fn lensfind_cuda_device_name(device: c_int, out: *mut std::ffi::c_char, len: c_int) -> c_int;
    fn lensfind_cuda_capability(device: c_int) -> c_int;
    fn lensfind_cuda_mem_info(device: c_int, free: *mut u64, total: *mut u64) -> c_int;
}

/// The arguments of one fused AdamW call: parameters with their gradients, moments and step tensors.
pub(crate) struct AdamWGroup<'a> {
    pub params: Vec<&'a Tensor>,
    pub grads: Vec<Tensor>,
    pub exp_avgs: Vec<&'a Tensor>,
    pub exp_avg_sqs: Vec<&'a Tensor>,
    pub steps: Vec<Tensor>,
}

/// libtorch's fused AdamW kernel (`torch._fused_adamw_`, what `torch.optim.AdamW(fused=True)` calls) on one group
/// of tensors sharing a weight decay, at the learning rate `lr` holds when the kernel runs (a float32 scalar on the
/// tensors' device, as CUDA's kernel reads it; refused otherwise on every device). With `found_inf` (a float32
/// scalar on the tensors' device), the update is skipped on the device where it holds 1.
#[allow(clippy::too_many_arguments)] // the kernel's own arguments
pub(crate) fn fused_adamw(
    g: &AdamWGroup,
    lr: &Tensor,
    beta1: f64,
    beta2: f64,
    weight_decay: f64,
    eps: f64,
    found_inf: Option<&Tensor>,
) -> Result<(), String> {
    let ptrs = |v: &[&Tensor]| v.iter().map(|t| t.as_ptr() as *mut torch_sys::C_tensor).collect::<Vec<_>>();
    let (p, m, v) = (ptrs(&g.params), ptrs(&g.exp_avgs), ptrs(&g.exp_avg_sqs));
    let gr: Vec<_> = g.grads.iter().map(|t| t.as_ptr() as *mut torch_sys::C_tensor).collect();
    let st: Vec<_> = g.steps.iter().map(|t| t.as_ptr() as *mut torch_sys::C_tensor).collect();
    let mut err = vec![0 as std::ffi::c_char; 512];
    // SAFETY: five arrays of n valid at::Tensor pointers and lr's, all outliving the call; err has err_len bytes.
    let rc = unsafe {
        lensfind_fused_adamw(
            p.as_ptr(),
            gr.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            st.as_ptr(),
            p.len() as c_int,
            lr.as_ptr() as *mut torch_sys::C_tensor,
            beta1,
            beta2,
            weight_decay,
            eps,
            found_inf.map_or(std::ptr::null_mut(), |t| t.as_ptr() as *mut torch_sys::C_tensor),
            err.as_mut_ptr(),
            err.len() as c_int,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        // SAFETY: NUL-terminated by the shim.
        Err(unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned())
    }
}

/// A page-locked copy of the CPU tensor `t`, from which copies to a GPU run asynchronously (libtorch's
/// `Tensor::pin_memory()`, without the device argument that tch passes and libtorch warns about).
pub(crate) fn pin_memory(t: &Tensor) -> Result<Tensor, String> {
    let mut err = vec![0 as std::ffi::c_char; 512];
    // SAFETY: t is a valid tensor; err has err_len bytes; the shim returns a new at::Tensor that we own, or null.
    let ptr =
        unsafe { lensfind_pin_memory(t.as_ptr() as *mut torch_sys::C_tensor, err.as_mut_ptr(), err.len() as c_int) };
    if ptr.is_null() {
        // SAFETY: NUL-terminated by the shim.
        return Err(unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned());
    }
    // SAFETY: a heap-allocated at::Tensor that no one else owns; tch frees it when the Tensor drops.
    Ok(unsafe { Tensor::from_ptr(ptr) })
}

/// A point in a CUDA device's stream of work: everything queued before it was recorded has run once it completes.
/// Dropping it waits for that.
#[derive(Debug)]
pub(crate) struct CudaEvent(*mut std::ffi::c_void);

impl CudaEvent {
    /// Recorded now on the current stream of CUDA device `index` (None where that fails).
    pub(crate) fn record(index: usize) -> Option<CudaEvent> {
        // SAFETY: returns a new c10::Event owned by us, or null.
        let event = unsafe { lensfind_cuda_event_record(index as c_int) };
        (!event.is_null()).then_some(CudaEvent(event))
    }
}

impl Drop for CudaEvent {
    fn drop(&mut self) {
        // SAFETY: the event came from lensfind_cuda_event_record and is freed once, here.
        unsafe { lensfind_event_wait_and_free(self.0) }
    }
}

/// The L2 norm of `tensors` taken together (the norm of their norms, from one multi-tensor kernel), a float32 scalar
/// on their device.
pub(crate) fn total_norm(tensors: &[Tensor]) -> Tensor {
    let ptrs: Vec<_> = tensors.iter().map(|t| t.as_ptr() as *mut torch_sys::C_tensor).collect();
    // SAFETY: n valid tensors; the shim returns a new at::Tensor that we own, or null.
    let norm = unsafe { lensfind_total_norm(ptrs.as_ptr(), ptrs.len() as c_int) };
    assert!(!norm.is_null(), "the total norm of {} tensors failed (none, or on several devices)", tensors.len());
    // SAFETY: a heap-allocated at::Tensor that no one else owns.
    unsafe { Tensor::from_ptr(norm) }
}

/// Multiplies `tensors` in place by the scalar tensor `factor` (on their device), in one multi-tensor kernel.
pub(crate) fn foreach_mul_(tensors: &[Tensor], factor: &Tensor) {
    let ptrs: Vec<_> = tensors.iter().map(|t| t.as_ptr() as *mut torch_sys::C_tensor).collect();
    // SAFETY: n valid tensors and a valid factor; the shim multiplies them in place.
    let rc = unsafe {
        lensfind_foreach_mul_(ptrs.as_ptr(), ptrs.len() as c_int, factor.as_ptr() as *mut torch_sys::C_tensor)
    };
    assert_eq!(rc, 0, "multiplying {} tensors by a factor failed", tensors.len());
}

/// Moves each of `selves` in place toward its partner in `ends` by `weight` (`self += weight * (end - self)`), in
/// one multi-tensor kernel. The two lists pair up in order, each pair of one shape, dtype and device.
pub(crate) fn foreach_lerp_(selves: &[Tensor], ends: &[Tensor], weight: f64) {
    assert_eq!(selves.len(), ends.len(), "foreach_lerp_ pairs two lists of one length");
    let ptr = |t: &Tensor| t.as_ptr() as *mut torch_sys::C_tensor;
    let (s, e): (Vec<_>, Vec<_>) = (selves.iter().map(ptr).collect(), ends.iter().map(ptr).collect());
    // SAFETY: n valid tensors in each list; the shim moves the first list in place.
    let rc = unsafe { lensfind_foreach_lerp_(s.as_ptr(), e.as_ptr(), s.len() as c_int, weight) };
    assert_eq!(rc, 0, "moving {} tensors toward others failed (shapes, dtypes or devices differ)", selves.len());
}

/// Drops the gradient of `t` (set_to_none), so the next backward writes a fresh one.
pub(crate) fn reset_grad(t: &Tensor) {
    // SAFETY: t is a valid tensor; resetting its grad is what PyTorch's zero_grad(set_to_none=True) does.
    unsafe { lensfind_reset_grad(t.as_ptr() as *mut torch_sys::C_tensor) }
}

/// Runs `f` with autocast off for `device` (inside an autocast region): for the classifier head, so that logits
/// keep float32 resolution; in bfloat16 they fall on a grid coarse enough to tie many scores.
pub(crate) fn without_autocast<T>(device: Device, f: impl FnOnce() -> T) -> T {
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

/// Whether autocast is on for `device`'s type on this thread.
pub(crate) fn autocast_enabled(device: Device) -> bool {
    // SAFETY: reads a thread-local flag.
    unsafe { lensfind_autocast_is_enabled(c_int::from(device.is_cuda())) != 0 }
}

/// Whether autograd records the operations run now on this thread: false under `tch::no_grad` and
/// `inference_mode`, where a computation can be chosen for its forward alone.
pub(crate) fn grad_mode_enabled() -> bool {
    // SAFETY: reads a thread-local flag.
    unsafe { lensfind_grad_mode_enabled() != 0 }
}

/// The model name of CUDA device `index` (what `nvidia-smi` calls it), None when it cannot be read.
pub(crate) fn cuda_device_name(index: usize) -> Option<String> {
    let mut buf = vec![0 as std::ffi::c_char; 256];
    // SAFETY: the shim writes at most buf.len() bytes, NUL-terminated.
    let rc = unsafe { lensfind_cuda_device_name(index as c_int, buf.as_mut_ptr(), buf.len() as c_int) };
    // SAFETY: NUL-terminated within buf on success.
    (rc == 0).then(|| unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// The compute capability of CUDA device `index` as (major, minor), e.g. (9, 0) for Hopper; None without CUDA.
pub(crate) fn cuda_capability(index: usize) -> Option<(i32, i32)> {
    // SAFETY: a plain query.
    let cc = unsafe { lensfind_cuda_capability(index as c_int) };
    (cc >= 0).then_some((cc / 10, cc % 10))
}

/// Free and total memory of CUDA device `index` in bytes (None without CUDA, or where the driver cannot say).
pub(crate) fn cuda_mem_info(index: usize) -> Option<(u64, u64)> {
    let (mut free, mut total) = (0u64, 0u64);
    // SAFETY: the shim writes two integers through valid pointers.
    let rc = unsafe { lensfind_cuda_mem_info(index as c_int, &mut free, &mut total) };
    (rc == 0).then_some((free, total))
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
    // SAFETY: as above; the nesting count is what libtorch's own autocast guard increments.
    unsafe { lensfind_autocast_increment_nesting() };
    let _restore = Restore { dev, prev, dt };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

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

    #[test]
    fn grad_mode_is_off_under_no_grad_and_inference_mode_and_on_elsewhere() {
        assert!(grad_mode_enabled());
        assert!(!tch::no_grad(grad_mode_enabled));
        assert!(!inference_mode(grad_mode_enabled));
        assert!(grad_mode_enabled(), "back on after the regions");
    }

    #[test]
    fn autocast_enabled_follows_the_region() {
        assert!(!autocast_enabled(Device::Cpu));
        assert!(autocast(Device::Cpu, AutocastDtype::BFloat16, || autocast_enabled(Device::Cpu)));
        assert!(!autocast(Device::Cpu, AutocastDtype::BFloat16, || without_autocast(Device::Cpu, || {
            autocast_enabled(Device::Cpu)
        })));
        assert!(!autocast_enabled(Device::Cpu), "off again after the region");
    }
}
