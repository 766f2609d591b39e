#include "reid/engine/distributed.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <mutex>
#include <thread>

#include <torch/torch.h>

#include "reid/core/logging.h"
#include "reid/engine/tcp_backend.h"
#include "reid/utils/strings.h"
#include "nccl_backend.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace reid::engine {
namespace {

using Clock = std::chrono::steady_clock;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

int env_int(const char* name, int minimum) {
  const std::string text = env(name);
  try {
    std::size_t used = 0;
    const int value = std::stoi(text, &used);
    if (used == text.size() && value >= minimum) return value;
  } catch (const std::exception&) {
  }
  throw ConfigError(name, "the launcher variable must be an integer >= " + std::to_string(minimum) + " (got '" +
                              text + "')");
}

bool loopback(const std::string& host) {
  return host == "localhost" || utils::starts_with(host, "127.") || host == "::1";
}

std::string heartbeat_key(int rank) { return "reid/heartbeat/" + std::to_string(rank); }
std::string failure_key(int rank) { return "reid/failed/" + std::to_string(rank); }

// One line of a (possibly multi-line) LibTorch message.
std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string describe(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error))
    return first_line(torch_error->what_without_backtrace());
  return first_line(error.what());
}

}  // namespace

namespace detail {
namespace {
std::atomic<NcclBackendFactory> nccl_factory{nullptr};
}
void register_nccl_backend(NcclBackendFactory factory) { nccl_factory = factory; }
NcclBackendFactory nccl_backend() { return nccl_factory.load(); }
}  // namespace detail

std::optional<DistributedOptions> distributed_options_from_environment() {
  if (env("WORLD_SIZE").empty()) return std::nullopt;
  DistributedOptions o;
  o.world_size = env_int("WORLD_SIZE", 1);
  o.rank = env("RANK").empty() && o.world_size == 1 ? 0 : env_int("RANK", 0);
  if (o.rank >= o.world_size)
    throw ConfigError("RANK", "rank " + std::to_string(o.rank) + " is not below WORLD_SIZE " +
                                  std::to_string(o.world_size));
  o.local_rank = env("LOCAL_RANK").empty() ? o.rank : env_int("LOCAL_RANK", 0);
  if (o.world_size > 1) {
    if (env("MASTER_ADDR").empty()) throw ConfigError("MASTER_ADDR", "must be set for a multi-process job");
    o.master_addr = env("MASTER_ADDR");
    o.master_port = env_int("MASTER_PORT", 1);
    if (o.master_port > 65535) throw ConfigError("MASTER_PORT", "is not a port (" + env("MASTER_PORT") + ")");
  }
  const std::string agent = env("TORCHELASTIC_USE_AGENT_STORE");
  o.rank0_hosts_store = !(agent == "True" || agent == "true" || agent == "1");
  return o;
}

// ---- Distributed --------------------------------------------------------------------------------

// LibTorch's TCPStore client waits for its answers without a time limit (its timeout bounds
// connecting and wait(), not check/get/add/set), and it serializes operations behind one lock.
// On a host whose link is cut, or against a program that accepts connections and never answers,
// a store operation blocks until TCP gives up, ~15 minutes. within() runs `operation` on a
// thread of its own and waits at most `limit`; past it the thread is left behind (holding what
// it uses, blocked in a read until the process ends) and within() throws StoreSilent.
struct StoreSilent : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename Result>
Result within(std::chrono::milliseconds limit, std::function<Result()> operation) {
  struct Outcome {
    std::mutex mutex;
    std::condition_variable done_signal;
    bool done = false;
    std::optional<Result> value;
    std::exception_ptr error;
  };
  auto outcome = std::make_shared<Outcome>();
  std::thread([outcome, operation = std::move(operation)] {
    std::optional<Result> value;
    std::exception_ptr error;
    try {
      value.emplace(operation());
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(outcome->mutex);
    outcome->value = std::move(value);
    outcome->error = error;
    outcome->done = true;
    outcome->done_signal.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(outcome->mutex);
  if (!outcome->done_signal.wait_for(lock, limit, [&] { return outcome->done; }))
    throw StoreSilent("no answer within " + std::to_string(limit.count() / 1000) + " s");
  if (outcome->error) std::rethrow_exception(outcome->error);
  return std::move(*outcome->value);
}

using StorePair = std::pair<c10::intrusive_ptr<c10d::TCPStore>, c10::intrusive_ptr<c10d::TCPStore>>;

// The rendezvous store and a second connection to it (for the heartbeat and failure reports),
// made within `deadline`: connecting checks the server with a request that within() bounds.
static StorePair connect_stores(const std::string& address, c10d::TCPStoreOptions options,
                                std::chrono::milliseconds deadline) {
  try {
    return within<StorePair>(deadline, [address, options]() mutable {
      StorePair stores;
      stores.first = c10::make_intrusive<c10d::TCPStore>(address, options);
      options.isServer = false;
      options.timeout = std::chrono::seconds(10);
      stores.second = c10::make_intrusive<c10d::TCPStore>(address, options);
      return stores;
    });
  } catch (const StoreSilent&) {
    throw Error("no rendezvous store answered within " + std::to_string(deadline.count() / 1000) +
                " s (distributed.timeout + 5 s): rank 0 never started, or another program is listening on that port "
                "(choose a free MASTER_PORT)");
  }
}

// The heartbeat: a counter per rank in the store, incremented twice a second, that tells a
// rank whose collective failed which peer stopped. Its thread shares this state rather than
// Distributed's, so that one blocked in a store operation (a cut link) can be left behind.
struct Heartbeat {
  c10::intrusive_ptr<c10d::TCPStore> store;
  std::atomic<bool> stop{false};
  std::atomic<bool> ended{false};
};

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> group;
  // A second connection for the heartbeat thread and failure reports, so that they never wait
  // behind the process group's own store traffic.
  c10::intrusive_ptr<c10d::TCPStore> side_store;
  DistributedOptions options;
  std::shared_ptr<Heartbeat> heartbeat = std::make_shared<Heartbeat>();
  std::thread heartbeat_thread;
  std::atomic<bool> failed{false};
  std::atomic<bool> reported{false};

  ~Impl() {
    heartbeat->stop = true;
    if (heartbeat_thread.joinable()) {
      // It ends within half a second unless a store operation blocks it (a cut link).
      for (int i = 0; i < 40 && !heartbeat->ended; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (heartbeat->ended)
        heartbeat_thread.join();
      else
        heartbeat_thread.detach();
    }
    // After a failed collective the process group may still hold work for a dead peer; its
    // destructor would wait for it. The process is about to exit: let it go.
    if (failed) {
      group.release();
      store.release();
      side_store.release();
    }
  }
};

struct Distributed::Pending::Impl {
  c10::intrusive_ptr<c10d::Work> work;
  Distributed* owner = nullptr;
  bool done = false;
};

Distributed::Pending::Pending(Pending&&) noexcept = default;
Distributed::Pending& Distributed::Pending::operator=(Pending&&) noexcept = default;
Distributed::Pending::~Pending() = default;

void Distributed::Pending::wait() {
  if (!impl_ || impl_->done) return;
  impl_->done = true;
  try {
    impl_->work->wait();
  } catch (const std::exception& e) {
    impl_->owner->fail("a gradient all-reduce", e);
  }
}

Distributed::Distributed(torch::Device device) : device_(device) {}

Distributed::Distributed(const DistributedOptions& options, torch::Device device)
    : rank_(options.rank), world_size_(options.world_size), device_(device), impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  if (world_size_ == 1) return;
  std::string backend = options.backend;
  if (backend == "auto") backend = device.is_cuda() ? "nccl" : "tcp";
  if (backend != "tcp" && backend != "nccl")
    throw ConfigError("distributed.backend", "'" + backend + "' is not one of auto, tcp, nccl");
  if (backend == "tcp" && device.is_cuda())
    throw ConfigError("distributed.backend", "the tcp backend moves CPU tensors; on CUDA use nccl (or auto)");
  if (backend == "nccl" && !device.is_cuda())
    throw ConfigError("distributed.backend", "nccl needs a CUDA device (device is " + device.str() + ")");
  backend_ = backend;
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(options.master_port);
  store_options.isServer = rank_ == 0 && options.rank0_hosts_store;
  store_options.waitWorkers = false;
  store_options.timeout = options.timeout;
  try {
    auto stores = connect_stores(options.master_addr, store_options, options.timeout + std::chrono::seconds(5));
    impl_->store = stores.first;
    impl_->side_store = stores.second;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(rank_) + " cannot reach the rendezvous store at " + options.master_addr + ":" +
                std::to_string(options.master_port) + ": " + describe(e));
  }
  impl_->side_store->add(heartbeat_key(rank_), 1);
  impl_->heartbeat->store = impl_->side_store;
  impl_->heartbeat_thread = std::thread([beat = impl_->heartbeat, rank = rank_] {
    while (!beat->stop) {
      try {
        beat->store->add(heartbeat_key(rank), 1);
      } catch (const std::exception&) {
        break;  // the store is gone; failures will say so
      }
      for (int i = 0; i < 5 && !beat->stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    beat->ended = true;
  });
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("c10d", impl_->store);
  try {
    if (backend == "tcp") {
      TcpBackendOptions tcp;
      tcp.address = env("REID_TCP_ADDRESS");
      tcp.route_to = loopback(options.master_addr) ? "127.0.0.1" : options.master_addr;
      tcp.timeout = options.timeout;
      impl_->group = c10::make_intrusive<TcpBackend>(prefixed, rank_, world_size_, tcp);
    } else {
      const auto factory = detail::nccl_backend();
      if (!factory)
        throw ConfigError("distributed.backend",
                          "nccl is not in this program: it lives in LibReID's CUDA part (libreid_cuda), which "
                          "programs linked with reid::reid load when LibTorch has CUDA and NCCL");
      detail::NcclBackendRequest request;
      request.store = prefixed;
      request.rank = rank_;
      request.world_size = world_size_;
      request.device = device.index();
      request.timeout = options.timeout;
      impl_->group = factory(request);
    }
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(rank_) + ": the " + backend + " process group could not be set up (" +
                describe(e) + ")");
  }
}

Distributed::~Distributed() = default;

void Distributed::report_failure(const std::string& message) noexcept {
  if (!impl_ || !impl_->side_store || impl_->reported.exchange(true)) return;
  try {
    const std::string text = first_line(message);
    within<bool>(std::chrono::seconds(5), [store = impl_->side_store, key = failure_key(rank_), text] {
      store->set(key, std::vector<uint8_t>(text.begin(), text.end()));
      return true;
    });
  } catch (...) {
    // The store cannot be reached: the other ranks learn of this one from its heartbeat.
  }
}

namespace {

// Who made a collective fail, asked of the store: a rank that reported its own failure, else a
// rank whose heartbeat stopped. Returns (culprit or -1, message).
std::pair<int, std::string> diagnose(c10d::TCPStore& store, int rank, int world_size, const std::string& operation,
                                     const std::string& cause, std::chrono::milliseconds timeout) {
  for (int r = 0; r < world_size; ++r) {
    if (r == rank || !store.check({failure_key(r)})) continue;
    const auto bytes = store.get(failure_key(r));
    return {r, "rank " + std::to_string(r) + " failed: " + std::string(bytes.begin(), bytes.end()) + " (rank " +
                   std::to_string(rank) + " stops: " + operation + " cannot complete)"};
  }
  std::vector<int64_t> before(static_cast<std::size_t>(world_size));
  for (int r = 0; r < world_size; ++r) before[static_cast<std::size_t>(r)] = store.add(heartbeat_key(r), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  std::vector<int> dead;
  for (int r = 0; r < world_size; ++r)
    if (r != rank && store.add(heartbeat_key(r), 0) == before[static_cast<std::size_t>(r)]) dead.push_back(r);
  if (dead.empty())
    return {-1, "rank " + std::to_string(rank) + ": " + operation + " failed (" + cause +
                    "); every rank is still alive, so one is stuck or running a different collective (timeout " +
                    std::to_string(timeout.count() / 1000) + " s)"};
  std::vector<std::string> names;
  for (int r : dead) names.push_back(std::to_string(r));
  return {dead.front(), std::string(dead.size() == 1 ? "rank " : "ranks ") + utils::join(names) +
                            " died (killed or crashed) during " + operation + "; rank " + std::to_string(rank) +
                            " stops (" + cause + ")"};
}

}  // namespace

void Distributed::fail(const std::string& operation, const std::exception& error) {
  impl_->failed = true;
  const std::string cause = describe(error);
  // The store answers in milliseconds when it is reachable; the heartbeat check waits 2 s.
  const auto limit = std::chrono::seconds(10);
  std::pair<int, std::string> found;
  try {
    found = within<std::pair<int, std::string>>(
        limit, [store = impl_->side_store, rank = rank_, world = world_size_, operation, cause,
                timeout = impl_->options.timeout] { return diagnose(*store, rank, world, operation, cause, timeout); });
  } catch (const std::exception& store_error) {
    impl_->reported = true;  // nothing more can be said through that store
    const std::string host = impl_->options.rank0_hosts_store ? "rank 0, which hosts it," : "the launcher hosting it";
    const std::string why = dynamic_cast<const StoreSilent*>(&store_error) != nullptr
                                ? "did not answer within " + std::to_string(limit.count()) + " s: " + host +
                                      " died or this host lost its network"
                                : "is unreachable (" + describe(store_error) + "): " + host + " died";
    found = {0, "rank " + std::to_string(rank_) + ": " + operation + " failed (" + cause +
                    ") and the rendezvous store at " + impl_->options.master_addr + ":" +
                    std::to_string(impl_->options.master_port) + " " + why};
  }
  throw DistributedError(found.first, found.second);
}

#define REID_COLLECTIVE(name, call)                   \
  do {                                                \
    try {                                             \
      call;                                           \
    } catch (const DistributedError&) {               \
      throw;                                          \
    } catch (const std::exception& collective_error) { \
      fail(name, collective_error);                   \
    }                                                 \
  } while (0)

void Distributed::broadcast(std::vector<torch::Tensor> tensors, int root) {
  if (world_size_ == 1 || tensors.empty()) return;
  // One flat buffer per dtype: one collective instead of one per tensor.
  std::map<c10::ScalarType, std::vector<torch::Tensor*>> by_type;
  for (auto& t : tensors) by_type[t.scalar_type()].push_back(&t);
  for (auto& entry : by_type) {
    std::vector<torch::Tensor> flat;
    for (auto* t : entry.second) flat.push_back(t->detach().contiguous().view(-1).to(device_));
    std::vector<torch::Tensor> buffer{torch::cat(flat)};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    REID_COLLECTIVE("broadcast", impl_->group->broadcast(buffer, options)->wait());
    int64_t offset = 0;
    torch::NoGradGuard no_grad;
    for (auto* t : entry.second) {
      t->copy_(buffer[0].narrow(0, offset, t->numel()).view(t->sizes()));
      offset += t->numel();
    }
  }
}

void Distributed::all_reduce_sum(torch::Tensor& tensor) {
  if (world_size_ == 1) return;
  std::vector<torch::Tensor> buffer{tensor.is_contiguous() ? tensor : tensor.contiguous()};
  REID_COLLECTIVE("all-reduce", impl_->group->allreduce(buffer)->wait());
  if (!buffer[0].is_same(tensor)) tensor.copy_(buffer[0]);
}

torch::Tensor Distributed::all_reduce(const torch::Tensor& tensor) {
  auto out = tensor.detach().clone(at::MemoryFormat::Contiguous);
  all_reduce_sum(out);
  return out;
}

torch::Tensor Distributed::all_reduce_mean(const torch::Tensor& tensor) {
  auto out = all_reduce(tensor);
  if (world_size_ > 1) out.div_(world_size_);
  return out;
}

bool Distributed::any(bool value) {
  if (world_size_ == 1) return value;
  auto flag = torch::full({1}, value ? 1.0f : 0.0f, torch::TensorOptions().device(device_));
  all_reduce_sum(flag);
  return flag.item<float>() > 0.0f;
}

std::vector<torch::Tensor> Distributed::all_gather(const torch::Tensor& tensor) {
  if (world_size_ == 1) return {tensor};
  std::vector<torch::Tensor> input{tensor.detach().contiguous()};
  std::vector<std::vector<torch::Tensor>> output(1);
  for (int r = 0; r < world_size_; ++r) output[0].push_back(torch::empty_like(input[0]));
  REID_COLLECTIVE("all-gather", impl_->group->allgather(output, input)->wait());
  return output[0];
}

torch::Tensor Distributed::gather_rows(const torch::Tensor& tensor) {
  if (world_size_ == 1) return tensor;
  const auto counts = all_gather(torch::full({1}, tensor.size(0), torch::TensorOptions().dtype(torch::kLong).device(device_)));
  int64_t most = 0;
  std::vector<int64_t> rows;
  for (const auto& c : counts) {
    rows.push_back(c.item<int64_t>());
    most = std::max(most, rows.back());
  }
  auto sizes = tensor.sizes().vec();
  sizes[0] = most;
  auto padded = torch::zeros(sizes, tensor.options());
  padded.narrow(0, 0, tensor.size(0)).copy_(tensor);
  auto parts = all_gather(padded);
  for (std::size_t r = 0; r < parts.size(); ++r) parts[r] = parts[r].narrow(0, 0, rows[r]);
  return torch::cat(parts);
}

void Distributed::barrier() {
  if (world_size_ == 1) return;
  // An all-reduce rather than the backend's barrier: Gloo's and NCCL's barriers differ in how
  // they pick devices, a one-element sum works the same everywhere.
  auto token = torch::zeros({1}, torch::TensorOptions().device(device_));
  all_reduce_sum(token);
}

Distributed::Pending Distributed::all_reduce_sum_async(torch::Tensor& tensor) {
  Pending pending;
  if (world_size_ == 1) return pending;
  TORCH_CHECK(tensor.is_contiguous(), "asynchronous all-reduce needs a contiguous buffer");
  pending.impl_ = std::make_unique<Pending::Impl>();
  pending.impl_->owner = this;
  std::vector<torch::Tensor> buffer{tensor};
  REID_COLLECTIVE("a gradient all-reduce", pending.impl_->work = impl_->group->allreduce(buffer));
  return pending;
}

// ---- module helpers ---------------------------------------------------------------------------

void broadcast_module(Distributed& dist, torch::nn::Module& module) {
  if (!dist.is_distributed()) return;
  std::vector<torch::Tensor> tensors;
  for (const auto& p : module.parameters()) tensors.push_back(p);
  for (const auto& b : module.buffers()) tensors.push_back(b);
  dist.broadcast(tensors);
}

void average_buffers(Distributed& dist, torch::nn::Module& module) {
  if (!dist.is_distributed()) return;
  std::vector<torch::Tensor> buffers;
  for (const auto& b : module.buffers())
    if (b.is_floating_point()) buffers.push_back(b);
  if (buffers.empty()) return;
  std::vector<torch::Tensor> flat;
  for (const auto& b : buffers) flat.push_back(b.detach().contiguous().view(-1).to(torch::kFloat));
  auto sum = torch::cat(flat);
  dist.all_reduce_sum(sum);
  sum.div_(dist.world_size());
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (auto& b : buffers) {
    b.copy_(sum.narrow(0, offset, b.numel()).view(b.sizes()));
    offset += b.numel();
  }
}

// ---- GradientReducer ----------------------------------------------------------------------------

struct GradientReducer::Impl {
  Distributed& dist;
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  int64_t bucket_bytes;

  struct Slot {
    int bucket = -1;
    int64_t offset = 0;
  };
  struct Bucket {
    torch::Tensor buffer;
    std::vector<std::size_t> members;
    std::size_t pending = 0;
    Distributed::Pending work;
    bool launched = false;
  };
  std::vector<char> trainable;  // requires_grad of each parameter when the layout was made
  std::vector<char> hooked, got;
  std::vector<Slot> slots;
  std::vector<Bucket> buckets;
  std::size_t next_launch = 0;
  bool discover = true, active = false;
  double wait_seconds = 0.0;
  std::mutex mutex;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  Impl(Distributed& d, std::vector<std::pair<std::string, torch::Tensor>> p, double mb)
      : dist(d), parameters(std::move(p)), bucket_bytes(static_cast<int64_t>(mb * 1024 * 1024)) {
    hooked.assign(parameters.size(), 0);
    got.assign(parameters.size(), 0);
    slots.assign(parameters.size(), Slot{});
  }

  void on_gradient(std::size_t i, const torch::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!active) return;
    got[i] = 1;
    if (discover) return;  // averaged synchronously in finish()
    const Slot slot = slots[i];
    if (slot.bucket < 0)
      throw Error("parameter '" + parameters[i].first +
                  "' received a gradient, but it received none when its layout was made (a model whose set of "
                  "used parameters changes from step to step cannot be trained data-parallel)");
    auto& bucket = buckets[static_cast<std::size_t>(slot.bucket)];
    const auto& p = parameters[i].second;
    bucket.buffer.narrow(0, slot.offset, p.numel()).view(p.sizes()).copy_(grad);
    if (--bucket.pending == 0) launch_ready();
  }

  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      auto& bucket = buckets[next_launch++];
      bucket.work = dist.all_reduce_sum_async(bucket.buffer);
      bucket.launched = true;
    }
  }

  void hook(std::size_t i) {
    if (hooked[i]) return;
    hooked[i] = 1;
    std::weak_ptr<bool> guard = alive;
    parameters[i].second.register_hook([this, i, guard](const torch::Tensor& grad) {
      if (guard.lock()) on_gradient(i, grad);
    });
  }

  // Buckets over the parameters in `use`, in reverse registration order.
  void make_layout(const std::vector<char>& use) {
    buckets.clear();
    slots.assign(parameters.size(), Slot{});
    int64_t bytes = 0;
    for (std::size_t k = parameters.size(); k-- > 0;) {
      if (!use[k]) continue;
      const auto& p = parameters[k].second;
      const int64_t size = p.numel() * static_cast<int64_t>(p.element_size());
      const bool fits = !buckets.empty() && bytes + size <= bucket_bytes &&
                        buckets.back().buffer.scalar_type() == p.scalar_type() &&
                        buckets.back().buffer.device() == p.device();
      if (!fits) {
        buckets.emplace_back();
        buckets.back().buffer = torch::empty({0}, p.options());
        bytes = 0;
      }
      auto& bucket = buckets.back();
      slots[k] = {static_cast<int>(buckets.size() - 1), bucket.buffer.numel()};
      bucket.members.push_back(k);
      bucket.buffer = torch::empty({bucket.buffer.numel() + p.numel()}, p.options());
      bytes += size;
    }
  }

  void reset_buckets() {
    for (auto& b : buckets) {
      b.pending = b.members.size();
      b.launched = false;
      b.work = Distributed::Pending();
    }
    next_launch = 0;
  }

  void write_back(const Bucket& bucket) {
    torch::NoGradGuard no_grad;
    for (std::size_t k : bucket.members) {
      auto& p = parameters[k].second;
      const auto average = bucket.buffer.narrow(0, slots[k].offset, p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(average);
      else
        p.mutable_grad() = average.clone(at::MemoryFormat::Preserve).contiguous(p.suggest_memory_format());
    }
  }
};

GradientReducer::GradientReducer(Distributed& dist, std::vector<std::pair<std::string, torch::Tensor>> parameters,
                                 double bucket_mb)
    : impl_(std::make_unique<Impl>(dist, std::move(parameters), bucket_mb)) {}

GradientReducer::~GradientReducer() { *impl_->alive = false; }

std::size_t GradientReducer::buckets() const { return impl_->buckets.size(); }

double GradientReducer::take_wait_seconds() {
  const double s = impl_->wait_seconds;
  impl_->wait_seconds = 0.0;
  return s;
}

void GradientReducer::prepare() {
  auto& m = *impl_;
  if (!m.dist.is_distributed()) return;
  std::lock_guard<std::mutex> lock(m.mutex);
  std::vector<char> trainable(m.parameters.size());
  for (std::size_t i = 0; i < m.parameters.size(); ++i) trainable[i] = m.parameters[i].second.requires_grad();
  if (trainable != m.trainable) {
    // Freeze-then-open changed the trainable set: find the used parameters again.
    m.trainable = trainable;
    m.discover = true;
    for (std::size_t i = 0; i < trainable.size(); ++i)
      if (trainable[i]) m.hook(i);
  }
  std::fill(m.got.begin(), m.got.end(), 0);
  m.reset_buckets();
  m.active = true;
}

void GradientReducer::finish() {
  auto& m = *impl_;
  if (!m.dist.is_distributed()) return;
  std::unique_lock<std::mutex> lock(m.mutex);
  m.active = false;
  const auto start = Clock::now();
  if (m.discover) {
    // Agree on the used parameters, then average this step synchronously with the new layout.
    auto used = torch::zeros({static_cast<int64_t>(m.parameters.size())});
    for (std::size_t i = 0; i < m.parameters.size(); ++i) used[static_cast<int64_t>(i)] = m.got[i] ? 1.0f : 0.0f;
    m.dist.all_reduce_sum(used);
    std::vector<char> use(m.parameters.size());
    for (std::size_t i = 0; i < use.size(); ++i) use[i] = m.trainable[i] && used[static_cast<int64_t>(i)].item<float>() > 0;
    m.make_layout(use);
    m.reset_buckets();
    for (auto& bucket : m.buckets) {
      for (std::size_t k : bucket.members) {
        const auto& p = m.parameters[k].second;
        auto slice = bucket.buffer.narrow(0, m.slots[k].offset, p.numel()).view(p.sizes());
        if (m.got[k] && p.grad().defined())
          slice.copy_(p.grad());
        else
          slice.zero_();
      }
      bucket.pending = 0;
    }
    m.discover = false;
  } else {
    // Members that got no gradient on this rank this time contribute zeros.
    for (auto& bucket : m.buckets) {
      if (bucket.pending == 0) continue;
      for (std::size_t k : bucket.members)
        if (!m.got[k]) {
          const auto& p = m.parameters[k].second;
          bucket.buffer.narrow(0, m.slots[k].offset, p.numel()).zero_();
        }
      bucket.pending = 0;
    }
  }
  m.launch_ready();
  const double world = static_cast<double>(m.dist.world_size());
  for (auto& bucket : m.buckets) {
    bucket.work.wait();
    bucket.buffer.div_(world);
    m.write_back(bucket);
  }
  m.wait_seconds += std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace reid::engine
