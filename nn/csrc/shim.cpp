// The small C++ shim over what tch does not expose. Plain C functions, called from nn/src/shim.rs.
//
// Autocast: tch's `autocast` only switches CUDA's; training and inference in bfloat16 on CPU (and fp16/bf16 on
// CUDA with a chosen dtype) need libtorch's per-device autocast state.

#include <ATen/autocast_mode.h>
#include <ATen/core/Tensor.h>
#include <ATen/native/ForeachUtils.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>
#include <c10/core/Event.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/core/InferenceMode.h>

#include <cstring>
#include <exception>
#include <vector>

extern "C" {

// device: 0 = CPU, 1 = CUDA. dtype: 0 = bfloat16, 1 = float16. Returns the previous enabled state.
int lensfind_autocast_set(int device, int enabled, int dtype) {
  const auto dev = device == 1 ? at::DeviceType::CUDA : at::DeviceType::CPU;
  const bool prev = at::autocast::is_autocast_enabled(dev);
  at::autocast::set_autocast_dtype(dev, dtype == 1 ? at::kHalf : at::kBFloat16);
  at::autocast::set_autocast_enabled(dev, enabled != 0);
  return prev ? 1 : 0;
}

// Switches autocast on or off for a device without touching its dtype. Returns the previous state.
int lensfind_autocast_enable(int device, int enabled) {
  const auto dev = device == 1 ? at::DeviceType::CUDA : at::DeviceType::CPU;
  const bool prev = at::autocast::is_autocast_enabled(dev);
  at::autocast::set_autocast_enabled(dev, enabled != 0);
  return prev ? 1 : 0;
}

int lensfind_autocast_increment_nesting() { return at::autocast::increment_nesting(); }

// Clears the autocast weight-cast cache when the outermost autocast region ends, as torch.autocast's __exit__.
void lensfind_autocast_decrement_nesting() {
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
}

// Inference mode (torch.inference_mode): no autograd bookkeeping at all, cheaper than no_grad. The guard is
// thread-local RAII in libtorch; we hold it on the heap between the two calls, on the same thread.
void* lensfind_inference_mode_enter() { return new c10::InferenceMode(true); }
void lensfind_inference_mode_exit(void* guard) { delete static_cast<c10::InferenceMode*>(guard); }

// Whether autocast is on for a device (0 = CPU, 1 = CUDA) on this thread.
int lensfind_autocast_is_enabled(int device) {
  return at::autocast::is_autocast_enabled(device == 1 ? at::DeviceType::CUDA : at::DeviceType::CPU) ? 1 : 0;
}

// Whether autograd records the operations run now on this thread (off under no_grad and inference mode).
int lensfind_grad_mode_enabled() { return c10::GradMode::is_enabled() ? 1 : 0; }

// libtorch's fused AdamW kernel (torch.optim.AdamW(fused=True)) over n tensors whose state lensfind owns. A tch
// Tensor's pointer is an at::Tensor* here. `steps` holds the step count (already incremented) per tensor. Returns 0,
// or 1 with the C++ exception's message in err.
int lensfind_fused_adamw(at::Tensor** params, at::Tensor** grads, at::Tensor** exp_avgs, at::Tensor** exp_avg_sqs,
                         at::Tensor** steps, int n, at::Tensor* lr, double beta1, double beta2, double weight_decay,
                         double eps, at::Tensor* found_inf, char* err, int err_len) {
  try {
    std::vector<at::Tensor> p, g, m, v, st;
    for (int i = 0; i < n; ++i) {
      p.push_back(*params[i]);
      g.push_back(*grads[i]);
      m.push_back(*exp_avgs[i]);
      v.push_back(*exp_avg_sqs[i]);
      st.push_back(*steps[i]);
    }
    // What CUDA's kernel (FusedAdamWKernel.cu) checks before it runs, checked here on every device: the CPU kernel
    // does not, and pairs the four tensors of a slot by memory position, so moments whose strides differ from their
    // parameter's would be updated against the wrong elements there and refused on a GPU.
    TORCH_CHECK(at::native::check_fast_path_restrictions({p, g, m, v}),
                "params, grads, exp_avgs, and exp_avg_sqs must have same dtype, device, and layout");
    // The learning rate is a tensor that the kernel reads when it runs, not a number baked into the launch, so that
    // a captured step (a CUDA graph) replays with the rate of its own step. CUDA's kernel reads it as a float on the
    // parameters' GPU (lr.const_data_ptr<float>()); the CPU's would take any dtype through item(). Checked here on
    // every device.
    TORCH_CHECK(lr->numel() == 1 && lr->scalar_type() == at::kFloat && (n == 0 || lr->device() == p[0].device()),
                "lr must be a float32 scalar tensor on the parameters' device");
    // found_inf (a float32 scalar on the parameters' device, or null): where it is 1 the kernel leaves everything
    // as it was, decided on the device, without a round trip to the host.
    std::optional<at::Tensor> inf;
    if (found_inf != nullptr) {
      inf = *found_inf;
    }
    at::_fused_adamw_(p, g, m, v, {}, st, *lr, beta1, beta2, weight_decay, eps, false, false, {}, inf);
    return 0;
  } catch (const c10::Error& e) {
    std::strncpy(err, e.what_without_backtrace(), err_len - 1);
    err[err_len - 1] = 0;
    return 1;
  } catch (const std::exception& e) {
    std::strncpy(err, e.what(), err_len - 1);
    err[err_len - 1] = 0;
    return 1;
  }
}

// The L2 norm of n tensors taken together (torch.nn.utils.clip_grad_norm_'s total norm: the norm of the per-tensor
// norms, those from one multi-tensor kernel), as a new float32 scalar tensor on their device owned by the caller.
at::Tensor* lensfind_total_norm(at::Tensor** tensors, int n) {
  std::vector<at::Tensor> ts;
  for (int i = 0; i < n; ++i) {
    ts.push_back(*tensors[i]);
  }
  try {
    return new at::Tensor(at::linalg_vector_norm(at::stack(at::_foreach_norm(ts, 2)), 2));
  } catch (const std::exception&) {
    return nullptr;  // (n == 0, or tensors on several devices) reported by the caller
  }
}

// Multiplies n tensors in place by the scalar tensor factor (on their device), in one multi-tensor kernel.
int lensfind_foreach_mul_(at::Tensor** tensors, int n, at::Tensor* factor) {
  std::vector<at::Tensor> ts;
  for (int i = 0; i < n; ++i) {
    ts.push_back(*tensors[i]);
  }
  try {
    at::_foreach_mul_(ts, *factor);
    return 0;
  } catch (const std::exception&) {
    return 1;
  }
}

// Moves n tensors in place toward n others by `weight` (self += weight * (end - self)), in one multi-tensor kernel.
int lensfind_foreach_lerp_(at::Tensor** selves, at::Tensor** ends, int n, double weight) {
  std::vector<at::Tensor> s, e;
  for (int i = 0; i < n; ++i) {
    s.push_back(*selves[i]);
    e.push_back(*ends[i]);
  }
  try {
    at::_foreach_lerp_(s, e, weight);
    return 0;
  } catch (const std::exception&) {
    return 1;
  }
}

// An event recorded on CUDA device `device`'s current stream: it completes when the work queued there so far has run.
// Through c10's device-generic interface, so that the shim links no CUDA runtime. Null when it cannot be recorded.
void* lensfind_cuda_event_record(int device) {
  try {
    const c10::Device d(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device));
    const auto* impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    auto* event = new c10::Event(c10::DeviceType::CUDA);
    event->record(impl->getStream(d));
    return event;
  } catch (const std::exception&) {
    return nullptr;
  }
}

// Waits until the event has completed, then frees it.
void lensfind_event_wait_and_free(void* event) {
  auto* e = static_cast<c10::Event*>(event);
  try {
    e->synchronize();
  } catch (const std::exception&) {
  }
  delete e;
}

// A page-locked copy of CPU tensor t (Tensor.pin_memory() with no device: tch's wrapper passes one, which libtorch
// deprecates with a warning each call), as a new at::Tensor owned by the caller; null with err set on failure.
at::Tensor* lensfind_pin_memory(at::Tensor* t, char* err, int err_len) {
  try {
    return new at::Tensor(t->pin_memory());
  } catch (const std::exception& e) {
    std::strncpy(err, e.what(), err_len - 1);
    err[err_len - 1] = 0;
    return nullptr;
  }
}

// Drops a tensor's gradient (PyTorch's zero_grad(set_to_none=True)): the next backward writes a fresh gradient
// instead of adding into a zeroed one.
void lensfind_reset_grad(at::Tensor* t) { t->mutable_grad().reset(); }

}  // extern "C"
