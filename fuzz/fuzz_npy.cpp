// The .npy reader (features, labels and path arrays).
#include <string>

#include "fuzz_support.h"
#include "reid/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = reid::fuzz::write("input.npy", std::string(reinterpret_cast<const char*>(data), size));
  reid::fuzz::expect_clean([&] { reid::io::read_npy(path); });
  reid::fuzz::expect_clean([&] { reid::io::read_npy_strings(path); });
  reid::fuzz::expect_clean([&] { reid::io::read_features(path); });
  reid::fuzz::expect_clean([&] { reid::io::read_labels(path, 3); });
  return 0;
}
