#include "reid/core/runtime.h"

#include <sched.h>

#include <chrono>
#include <sstream>
#include <thread>

#include <opencv2/core.hpp>
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/Version.h>

#include "reid/core/error.h"
#include "reid/core/version.h"

namespace reid {

void seed_everything(std::uint64_t seed) { torch::manual_seed(seed); }

std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

int set_num_threads(int requested) {
  const int threads = requested > 0 ? requested : available_cores();
  torch::set_num_threads(threads);
  return threads;
}

torch::Device parse_device(const std::string& spec) {
  if (spec == "cpu") return torch::Device(torch::kCPU);
  int index = 0;
  if (spec == "cuda") {
    index = 0;
  } else if (spec.rfind("cuda:", 0) == 0 && spec.size() > 5 &&
             spec.find_first_not_of("0123456789", 5) == std::string::npos) {
    index = std::stoi(spec.substr(5));
  } else {
    throw ConfigError("device", "'" + spec + "' is not a device (use cpu, cuda or cuda:N)");
  }
  if (!torch::cuda::is_available())
    throw ConfigError("device", "'" + spec +
                                    "' requested but CUDA is not available (this LibTorch has no "
                                    "CUDA support or no GPU is visible); use cpu");
  const int count = static_cast<int>(torch::cuda::device_count());
  if (index >= count)
    throw ConfigError("device", "'" + spec + "' requested but only " + std::to_string(count) +
                                    " CUDA device(s) are visible");
  return torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(index));
}

std::string blas_backend() {
  // LibTorch's wheels link MKL statically, so the loaded libraries cannot tell: ask the build.
  const std::string config = at::show_config();
  const std::string key = "BLAS_INFO=";
  const auto at = config.find(key);
  if (at == std::string::npos) return "unknown";
  const auto begin = at + key.size();
  return config.substr(begin, config.find_first_of(", \n", begin) - begin);
}

std::string environment_report() {
  std::ostringstream out;
  out << "LibReID " << version() << " | LibTorch " << TORCH_VERSION << " | OpenCV "
      << CV_VERSION << "\n";
  out << "cores available: " << available_cores()
      << ", intra-op threads: " << torch::get_num_threads() << ", BLAS: " << blas_backend()
      << ", CPU kernels: " << at::get_cpu_capability() << "\n";
  out << "CUDA: ";
  if (torch::cuda::is_available())
    out << torch::cuda::device_count() << " device(s)";
  else
    out << "not available";
  return out.str();
}

}  // namespace reid
