// ProcessGroupNCCL for CUDA tensors. build.rs compiles this file with -DUSE_C10D_NCCL -DUSE_CUDA and the CUDA and
// NCCL headers of the torch wheel's nvidia packages when they are there (the PyPI wheel has CUDA); otherwise
// without, and the NCCL backend reports that it was not built in.

#include <cstring>
#include <exception>

#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace {
struct StoreHandle {
  c10::intrusive_ptr<c10d::Store> store;
};
}  // namespace

extern "C" int lensfind_nccl_available() {
#ifdef USE_C10D_NCCL
  return 1;
#else
  return 0;
#endif
}

// A new ProcessGroupNCCL as a raw Backend* with one reference owned by the caller, or null with err set.
extern "C" void* lensfind_nccl_backend(void* store, int rank, int world, int timeout_ms, char* err, int err_len) {
  auto fail = [&](const char* what) {
    if (err_len > 0) {
      std::strncpy(err, what, err_len - 1);
      err[err_len - 1] = 0;
    }
    return nullptr;
  };
#ifdef USE_C10D_NCCL
  try {
    auto* s = static_cast<StoreHandle*>(store);
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("nccl", s->store);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = std::chrono::milliseconds(timeout_ms);
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, opts);
    return static_cast<void*>(pg.release());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
#else
  (void)store;
  (void)rank;
  (void)world;
  (void)timeout_ms;
  return fail("this build of lensfind has no NCCL backend (the torch wheel had no CUDA headers); use --dist-backend gloo");
#endif
}

#ifdef USE_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

// The name of CUDA device `device` (e.g. "NVIDIA H100 80GB HBM3") into out (NUL-terminated); 0 on success, -1 when
// this build has no CUDA or the device cannot be queried. Used to key the autotune cache by GPU model.
extern "C" int lensfind_cuda_device_name(int device, char* out, int len) {
#ifdef USE_CUDA
  try {
    const auto* props = at::cuda::getDeviceProperties(device);
    std::strncpy(out, props->name, static_cast<size_t>(len) - 1);
    out[len - 1] = '\0';
    return 0;
  } catch (const std::exception&) {
    return -1;
  }
#else
  (void)device;
  (void)out;
  (void)len;
  return -1;
#endif
}

#ifdef USE_CUDA
#include <dlfcn.h>
#endif

// Free and total memory of CUDA device `device` in bytes, as the driver counts them (every process's allocations,
// and this one's cached blocks as used); 0 on success, -1 without CUDA. cudaMemGetInfo is looked up in the process
// (libtorch_cuda has loaded the CUDA runtime) rather than linked, so that building needs no CUDA runtime library.
extern "C" int lensfind_cuda_mem_info(int device, unsigned long long* free_bytes, unsigned long long* total_bytes) {
#ifdef USE_CUDA
  // Looked up rather than linked (also cudaGetDevice/cudaSetDevice: c10's CUDAGuard inlines calls into the runtime).
  using MemGetInfo = int (*)(size_t*, size_t*);
  using GetDevice = int (*)(int*);
  using SetDevice = int (*)(int);
  static const auto mem_get_info = reinterpret_cast<MemGetInfo>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  static const auto get_device = reinterpret_cast<GetDevice>(dlsym(RTLD_DEFAULT, "cudaGetDevice"));
  static const auto set_device = reinterpret_cast<SetDevice>(dlsym(RTLD_DEFAULT, "cudaSetDevice"));
  if (mem_get_info == nullptr || get_device == nullptr || set_device == nullptr) {
    return -1;
  }
  int previous = 0;
  if (get_device(&previous) != 0 || set_device(device) != 0) {
    return -1;
  }
  size_t f = 0, t = 0;
  const int rc = mem_get_info(&f, &t);
  set_device(previous);
  if (rc != 0) {
    return -1;
  }
  *free_bytes = f;
  *total_bytes = t;
  return 0;
#else
  (void)device;
  (void)free_bytes;
  (void)total_bytes;
  return -1;
#endif
}

// The compute capability (major * 10 + minor) of CUDA device `device`, or -1 without CUDA.
extern "C" int lensfind_cuda_capability(int device) {
#ifdef USE_CUDA
  try {
    const auto* props = at::cuda::getDeviceProperties(device);
    return props->major * 10 + props->minor;
  } catch (const std::exception&) {
    return -1;
  }
#else
  (void)device;
  return -1;
#endif
}
