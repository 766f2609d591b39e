#pragma once
/// @file
/// LibReID's CPU collectives: a c10d backend that runs broadcast, all-reduce (sum), all-gather
/// and barrier over TCP connections arranged in a ring between the ranks of a job.
///
/// Why not Gloo: PyTorch's own CPU backend is compiled into LibTorch, but the PyPI wheels
/// (torch 2.11.0 checked) ship none of Gloo's headers, which `ProcessGroupGloo.hpp` includes;
/// compiling against Gloo headers of another version than the one inside LibTorch would be a
/// silent ABI mismatch. This backend needs only sockets and the c10d store the job already
/// rendezvouses on. On CUDA, NCCL does the work.
///
/// Algorithms: all-reduce is the bandwidth-optimal ring (reduce-scatter, then all-gather: each
/// rank sends 2 (W-1)/W of the buffer); every segment is summed on one rank and then copied, so
/// every rank ends with the same bits. Broadcast is pipelined along the ring in 1 MiB pieces,
/// all-gather passes blocks round the ring. Operations run in the order they are issued, on one
/// thread per backend, so an asynchronous all-reduce overlaps the caller's work.
///
/// Failure: every operation has a deadline (the backend's timeout); a peer that closes its
/// connection (killed, crashed) or misses the deadline fails the operation with an error naming
/// it, and every later operation fails at once with the same cause. A failed rank closes its
/// connections, so that the failure travels round the ring at once rather than leaving ranks
/// that are not neighbours of the lost one waiting for the timeout.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "reid/config/config.h"

namespace reid::engine {

/// Options of TcpBackend.
struct TcpBackendOptions {
  /// The numeric address this rank listens on and announces to the others. Empty: 127.0.0.1 when
  /// `route_to` is a loopback host, otherwise the address of the interface the route to
  /// `route_to` leaves by.
  std::string address;
  /// A host the other ranks reach too (the rendezvous host), used when `address` is empty.
  std::string route_to = "127.0.0.1";
  /// Longest wait of one operation, and of connecting to the neighbours.
  std::chrono::milliseconds timeout{std::chrono::seconds(config::DistributedConfig{}.timeout)};
};

/// c10d backend over TCP for CPU tensors: one dense contiguous tensor per call; all-reduce
/// sums. Construction connects each rank to its ring neighbours through `store` (every rank of
/// the job must construct one, with the same store). Throws c10::Error on a connection that
/// cannot be made within the timeout.
class TcpBackend : public c10d::Backend {
 public:
  TcpBackend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, TcpBackendOptions options);
  ~TcpBackend() override;

  const std::string getBackendName() const override { return "tcp"; }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& opts = c10d::BroadcastOptions()) override;
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& opts = c10d::AllreduceOptions()) override;
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs,
                                           const c10d::AllgatherOptions& opts = c10d::AllgatherOptions()) override;
  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& opts = c10d::BarrierOptions()) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace reid::engine
