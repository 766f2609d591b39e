#pragma once
// The NCCL process group lives in LibReID's CUDA part (libreid_cuda.so, src/engine/nccl_backend.cpp),
// not in libreid.so: a program that needs no CUDA (reid-eval, a Python evaluation, a benchmark of
// the evaluator) then loads no CUDA library at all (LibTorch's CUDA part and the CUDA libraries it
// needs cost ~230 MiB of resident memory at start-up, before any work). Programs linked with
// reid::reid get both parts; libreid_cuda.so registers the factory below when it is loaded.
#include <chrono>
#include <string>

#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>

namespace c10d {
class Backend;
class Store;
}  // namespace c10d

namespace reid::engine::detail {

struct NcclBackendRequest {
  c10::intrusive_ptr<c10d::Store> store;
  int rank = 0;
  int world_size = 1;
  c10::DeviceIndex device = 0;
  std::chrono::milliseconds timeout{0};
};

using NcclBackendFactory = c10::intrusive_ptr<c10d::Backend> (*)(const NcclBackendRequest& request);

/// Called once by libreid_cuda.so's static initialiser.
void register_nccl_backend(NcclBackendFactory factory);

/// The registered factory, or nullptr in a program without LibReID's CUDA part.
NcclBackendFactory nccl_backend();

}  // namespace reid::engine::detail
