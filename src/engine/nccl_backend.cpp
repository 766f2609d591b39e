// LibReID's CUDA part (libreid_cuda.so): the NCCL process group and the device it runs on. Linked
// into every program built with reid::reid; see nccl_backend.h for why it is not in libreid.so.
#include "nccl_backend.h"

#include <c10/cuda/CUDAFunctions.h>
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

namespace reid::engine::detail {
namespace {

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const NcclBackendRequest& request) {
  // This rank's GPU becomes the current device, so that NCCL and every allocation made without
  // an explicit index land on it.
  c10::cuda::set_device(request.device);
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = request.timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(request.store, request.rank, request.world_size, options);
}

[[maybe_unused]] const bool registered = (register_nccl_backend(&make_nccl_backend), true);

}  // namespace
}  // namespace reid::engine::detail
