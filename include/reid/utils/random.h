#pragma once
/// @file
/// Portable random draws. std::mt19937_64 is specified bit-for-bit by the standard, but
/// std::uniform_*_distribution and std::shuffle are not (libstdc++ and libc++ differ), so
/// LibReID draws through these helpers to give the same numbers with every standard library.

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace reid::utils {

/// The generator behind every random stream of LibReID.
using Rng = std::mt19937_64;

/// Uniform integer in [0, n) (n > 0), without modulo bias (rejection sampling).
inline uint64_t uniform_index(Rng& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x = rng();
  while (x >= limit) x = rng();
  return x % n;
}

/// Uniform integer in [lo, hi].
inline int64_t uniform_int(Rng& rng, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(uniform_index(rng, static_cast<uint64_t>(hi - lo) + 1));
}

/// Uniform real in [lo, hi) from the top 53 bits of one draw.
inline double uniform_real(Rng& rng, double lo, double hi) {
  return lo + (hi - lo) * (static_cast<double>(rng() >> 11) * 0x1.0p-53);
}

/// True with probability p.
inline bool bernoulli(Rng& rng, double p) { return uniform_real(rng, 0.0, 1.0) < p; }

/// Fisher-Yates shuffle.
template <class T>
void shuffle(std::vector<T>& items, Rng& rng) {
  for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[uniform_index(rng, i)]);
}

}  // namespace reid::utils
