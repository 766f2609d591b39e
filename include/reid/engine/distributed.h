#pragma once
/// @file
/// Process topology for data-parallel training, on PyTorch's distributed engine (c10d: TCPStore
/// rendezvous, ProcessGroupNCCL on CUDA, LibReID's TcpBackend on CPU). `Distributed` is a
/// no-op in one process, so the training step calls it unconditionally (`is_main()`,
/// `all_reduce_mean()`, the GradientReducer) and never tests the world size itself.
///
/// Every collective has a timeout. When one fails (a peer was killed, crashed, or stopped
/// answering), the error says which rank it was: each rank keeps a heartbeat in the rendezvous
/// store and records its own fatal error there before it exits.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "reid/config/config.h"
#include "reid/core/error.h"
#include "reid/models/norm.h"

namespace reid::engine {

/// How this process joins a job. The defaults describe a single process.
struct DistributedOptions {
  /// This process's rank in [0, world_size) and its rank on its machine.
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  /// Where the rendezvous store listens (rank 0's host, or the launcher's).
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// Whether rank 0 hosts the store (false when a launcher hosts it: LibReID's own launcher and
  /// torchrun with TORCHELASTIC_USE_AGENT_STORE=True).
  bool rank0_hosts_store = true;
  /// auto (nccl on CUDA, tcp on CPU), tcp (LibReID's CPU collectives, engine/tcp_backend.h) or
  /// nccl.
  std::string backend = config::DistributedConfig{}.backend;
  /// Longest wait of any collective (and of the rendezvous) before the job fails.
  std::chrono::milliseconds timeout{std::chrono::seconds(config::DistributedConfig{}.timeout)};
};

/// The launcher variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT and
/// TORCHELASTIC_USE_AGENT_STORE) as options, or nullopt when WORLD_SIZE is not set. Throws
/// reid::ConfigError naming the variable when one is malformed or missing.
std::optional<DistributedOptions> distributed_options_from_environment();

/// A failed collective: `rank()` names the peer that failed (-1 when it cannot be told).
class DistributedError : public Error {
 public:
  DistributedError(int rank, const std::string& message) : Error(message), rank_(rank) {}
  int rank() const noexcept { return rank_; }

 private:
  int rank_;
};

/// Rank, world size, device and process group. Default-constructed it is a single process and
/// every collective returns its input.
class Distributed : public models::SyncGroup {
 public:
  /// A single process on `device`.
  explicit Distributed(torch::Device device = torch::kCPU);
  /// Joins the job `options` describe (rendezvous through the TCPStore, then the process group).
  /// Throws reid::Error when c10d or the backend is missing from this build, or the rendezvous
  /// times out.
  Distributed(const DistributedOptions& options, torch::Device device);
  ~Distributed() override;
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const noexcept { return rank_; }
  int world_size() const noexcept { return world_size_; }
  /// True on rank 0: the only rank that writes files and logs.
  bool is_main() const noexcept { return rank_ == 0; }
  /// True with more than one process.
  bool is_distributed() const noexcept { return world_size_ > 1; }
  const torch::Device& device() const noexcept { return device_; }
  /// "tcp", "nccl", or "none" in a single process.
  const std::string& backend() const noexcept { return backend_; }

  /// Copies rank `root`'s tensors into every rank's (in place).
  void broadcast(std::vector<torch::Tensor> tensors, int root = 0);
  /// Sum over ranks, in place.
  void all_reduce_sum(torch::Tensor& tensor);
  /// Mean over ranks (a new tensor on the same device).
  torch::Tensor all_reduce_mean(const torch::Tensor& tensor);
  /// True when `value` is true on any rank.
  bool any(bool value);
  /// Every rank's tensor (same shape on every rank), in rank order.
  std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor) override;
  /// Sum over ranks (a new tensor).
  torch::Tensor all_reduce(const torch::Tensor& tensor) override;
  /// Rows of every rank's `tensor` ([n_r, ...], n_r may differ) concatenated in rank order.
  torch::Tensor gather_rows(const torch::Tensor& tensor);
  /// Waits for every rank.
  void barrier();

  /// An asynchronous sum of `tensor` in place; wait() finishes it (GradientReducer's buckets).
  class Pending {
   public:
    Pending() = default;
    Pending(Pending&&) noexcept;
    Pending& operator=(Pending&&) noexcept;
    ~Pending();
    void wait();

   private:
    friend class Distributed;
    struct Impl;
    std::unique_ptr<Impl> impl_;
  };
  Pending all_reduce_sum_async(torch::Tensor& tensor);

  /// Records this rank's fatal error in the store so that the others can report it, once.
  void report_failure(const std::string& message) noexcept;

 private:
  struct Impl;
  [[noreturn]] void fail(const std::string& operation, const std::exception& error);
  int rank_ = 0, world_size_ = 1;
  torch::Device device_;
  std::string backend_ = "none";
  std::unique_ptr<Impl> impl_;
};

/// Averages gradients over ranks with bucketed, asynchronous all-reduces that start during the
/// backward pass (as PyTorch's DistributedDataParallel does) so communication overlaps
/// computation: a hook on every trainable parameter copies its gradient into its bucket (~25 MB,
/// parameters in reverse registration order, which is roughly the order backward produces them)
/// and launches the bucket's all-reduce as soon as the bucket is full and every earlier bucket
/// has been launched (every rank launches in the same order). finish() waits, divides by the
/// world size and writes the averages into `.grad`.
///
/// Parameters that get no gradient are found on the first step after the set of trainable
/// parameters changes (freeze-then-open): that step averages synchronously and agrees on the
/// unused set across ranks; they keep an undefined gradient, as in one process. In one process
/// prepare() and finish() do nothing.
class GradientReducer {
 public:
  GradientReducer(Distributed& dist, std::vector<std::pair<std::string, torch::Tensor>> parameters,
                  double bucket_mb = config::DistributedConfig{}.bucket_mb);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// Before backward().
  void prepare();
  /// After backward(): every trainable parameter's gradient is the mean over ranks.
  void finish();
  /// Seconds finish() spent waiting for communication since the last call (and resets it).
  double take_wait_seconds();
  /// Buckets of the current layout (for logs and tests).
  std::size_t buckets() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Makes every rank's model identical: broadcasts rank 0's parameters and buffers.
void broadcast_module(Distributed& dist, torch::nn::Module& module);

/// Averages floating-point buffers (batch-norm running statistics) over ranks, in place.
void average_buffers(Distributed& dist, torch::nn::Module& module);

}  // namespace reid::engine
