#pragma once
/// @file
/// The process-wide runtime: seeding, intra-op threads, device selection and an environment
/// report printed at start-up.

#include <cstdint>
#include <string>

#include <torch/types.h>

namespace reid {

/// Seeds LibTorch's CPU (and, when present, CUDA) generators. LibReID's own random streams
/// (samplers, transforms) take explicit seeds derived with mix_seed() instead of global state.
void seed_everything(std::uint64_t seed);

/// A well-mixed 64-bit seed derived from `seed` and a stream index (splitmix64 finaliser), so
/// that e.g. every (epoch, sample) pair gets an independent, reproducible random stream.
std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream);

/// Seconds on the monotonic clock (steady_clock): for measuring durations, not a time of day.
double monotonic_seconds();

/// Number of cores this process may run on (its CPU affinity mask).
int available_cores();

/// Sets LibTorch's intra-op thread count; `requested` <= 0 means all available cores.
/// Returns the number set. (LibTorch defaults to one thread on some builds, so always call it.)
int set_num_threads(int requested);

/// Parses "cpu", "cuda" or "cuda:N" and checks that the device exists. Throws reid::ConfigError
/// (key "device") naming the value and what is available.
torch::Device parse_device(const std::string& spec);

/// Human-readable summary: LibReID, LibTorch, OpenCV versions, threads, CUDA, BLAS library.
std::string environment_report();

/// The BLAS library LibTorch's matrix products run on, as its build configuration names it
/// (e.g. "mkl"); "unknown" when the configuration does not say.
std::string blas_backend();

}  // namespace reid
