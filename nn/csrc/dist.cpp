// libtorch's c10d, the engine under PyTorch DDP, for lensfind's data-parallel training: a TCPStore for rendezvous
// and ProcessGroupGloo (CPU or CUDA tensors). ProcessGroupNCCL lives in dist_nccl.cpp, compiled when the torch
// wheel has CUDA. Plain C functions, called from nn/src/dist.rs; every C++ exception becomes rc 1 and a message.

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <c10/util/Exception.h>
#include <c10/util/Logging.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

void set_error(char* err, int err_len, const char* what) {
  if (err_len <= 0) return;
  std::strncpy(err, what, err_len - 1);
  err[err_len - 1] = 0;
}

struct StoreHandle {
  c10::intrusive_ptr<c10d::Store> store;
};

struct GroupHandle {
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

// Runs f; 0 when it returned, 1 (with the message in err) when it threw.
template <typename F>
int guarded(char* err, int err_len, F&& f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    // The message without the C++ stack trace that libtorch appends.
    set_error(err, err_len, e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return 1;
  } catch (...) {
    set_error(err, err_len, "unknown C++ exception");
    return 1;
  }
}

void wait(GroupHandle* g, const c10::intrusive_ptr<c10d::Work>& work) {
  if (!work->wait(g->timeout)) {
    throw std::runtime_error("collective did not complete");
  }
}

}  // namespace

// The glue the NCCL file provides (or its stand-in when the wheel has no CUDA).
extern "C" void* lensfind_nccl_backend(void* store, int rank, int world, int timeout_ms, char* err, int err_len);

extern "C" {

// Only errors from libtorch's own logging from now on.
void lensfind_quiet_logs() { FLAGS_caffe2_log_level = 2; }

// A TCPStore client (or, with is_server, the server too, as rank 0 runs it) that keeps every key under `prefix`.
// Blocks until the server answers or timeout_ms passes. Returns null with the reason in err.
void* lensfind_store_new(const char* host, int port, int is_server, int world, int timeout_ms, const char* prefix,
                         char* err, int err_len) {
  StoreHandle* h = nullptr;
  guarded(err, err_len, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = is_server != 0;
    opts.numWorkers = world > 0 ? std::optional<std::size_t>(world) : std::nullopt;
    opts.waitWorkers = false;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    h = new StoreHandle{c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp)};
  });
  return h;
}

void lensfind_store_free(void* store) { delete static_cast<StoreHandle*>(store); }

int lensfind_store_set(void* store, const char* key, const std::uint8_t* value, int len, char* err, int err_len) {
  return guarded(err, err_len, [&] {
    static_cast<StoreHandle*>(store)->store->set(key, std::vector<std::uint8_t>(value, value + len));
  });
}

// 1 when every key exists, 0 when one does not, -1 on error (the store is gone).
int lensfind_store_check(void* store, const char* key, char* err, int err_len) {
  int found = -1;
  guarded(err, err_len, [&] { found = static_cast<StoreHandle*>(store)->store->check({key}) ? 1 : 0; });
  return found;
}

// Copies the value of an existing key into out (at most cap bytes); returns its length, or -1 on error.
int lensfind_store_get(void* store, const char* key, std::uint8_t* out, int cap, char* err, int err_len) {
  int len = -1;
  guarded(err, err_len, [&] {
    auto v = static_cast<StoreHandle*>(store)->store->get(key);
    len = static_cast<int>(v.size());
    std::memcpy(out, v.data(), std::min<std::size_t>(v.size(), static_cast<std::size_t>(cap)));
  });
  return len;
}

// A process group over `store` (its keys under the store's prefix, then "gloo" or "nccl"). backend: 0 = Gloo,
// 1 = NCCL. hostname: the address Gloo binds and announces (null: GLOO_SOCKET_IFNAME if set, else the machine's
// hostname as torch does).
void* lensfind_pg_new(void* store, int backend, int rank, int world, int timeout_ms, const char* hostname, char* err,
                      int err_len) {
  auto* s = static_cast<StoreHandle*>(store);
  if (backend == 1) {
    void* b = lensfind_nccl_backend(s, rank, world, timeout_ms, err, err_len);
    if (b == nullptr) return nullptr;
    auto* g = new GroupHandle{
        c10::intrusive_ptr<c10d::Backend>::reclaim(static_cast<c10d::Backend*>(b)),
        std::chrono::milliseconds(timeout_ms)};
    return g;
  }
  GroupHandle* g = nullptr;
  guarded(err, err_len, [&] {
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("gloo", s->store);
    auto timeout = std::chrono::milliseconds(timeout_ms);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (hostname != nullptr) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
    } else if (ifname != nullptr && *ifname != 0) {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else {
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    g = new GroupHandle{c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, opts), timeout};
  });
  return g;
}

// Frees the group. Only after a clean end: a group whose peer died may hold threads blocked on it.
void lensfind_pg_free(void* pg) { delete static_cast<GroupHandle*>(pg); }

// In-place sum over all ranks of one tensor.
int lensfind_pg_allreduce_sum(void* pg, at::Tensor* t, char* err, int err_len) {
  return guarded(err, err_len, [&] {
    auto* g = static_cast<GroupHandle*>(pg);
    std::vector<at::Tensor> ts{*t};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp(c10d::ReduceOp::SUM);
    opts.timeout = g->timeout;
    wait(g, g->backend->allreduce(ts, opts));
  });
}

// In place: every rank gets root's tensor.
int lensfind_pg_broadcast(void* pg, at::Tensor* t, int root, char* err, int err_len) {
  return guarded(err, err_len, [&] {
    auto* g = static_cast<GroupHandle*>(pg);
    std::vector<at::Tensor> ts{*t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g->timeout;
    wait(g, g->backend->broadcast(ts, opts));
  });
}

// out (shape [world, ...in]) receives every rank's `in`, in rank order.
int lensfind_pg_allgather(void* pg, at::Tensor* out, at::Tensor* in, char* err, int err_len) {
  return guarded(err, err_len, [&] {
    auto* g = static_cast<GroupHandle*>(pg);
    const int world = g->backend->getSize();
    std::vector<at::Tensor> inputs{*in};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < world; ++r) outputs[0].push_back(out->select(0, r));
    c10d::AllgatherOptions opts;
    opts.timeout = g->timeout;
    wait(g, g->backend->allgather(outputs, inputs, opts));
  });
}

int lensfind_pg_barrier(void* pg, char* err, int err_len) {
  return guarded(err, err_len, [&] {
    auto* g = static_cast<GroupHandle*>(pg);
    c10d::BarrierOptions opts;
    opts.timeout = g->timeout;
    wait(g, g->backend->barrier(opts));
  });
}

}  // extern "C"
