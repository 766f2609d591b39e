#include <gtest/gtest.h>

#include <set>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/core/runtime.h"

namespace reid {
namespace {

TEST(Runtime, MixSeedIsDeterministicAndSpreadsStreams) {
  EXPECT_EQ(mix_seed(1, 2), mix_seed(1, 2));
  std::set<std::uint64_t> seen;
  for (std::uint64_t seed = 0; seed < 10; ++seed)
    for (std::uint64_t stream = 0; stream < 100; ++stream) seen.insert(mix_seed(seed, stream));
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Runtime, ThreadsDefaultToAllCores) {
  const int previous = torch::get_num_threads();
  EXPECT_EQ(set_num_threads(0), available_cores());
  EXPECT_EQ(torch::get_num_threads(), available_cores());
  EXPECT_EQ(set_num_threads(1), 1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  set_num_threads(previous);
}

TEST(Runtime, SeedMakesTorchRandomReproducible) {
  seed_everything(7);
  const auto a = torch::randn({4});
  seed_everything(7);
  const auto b = torch::randn({4});
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(Runtime, ParsesDevices) {
  EXPECT_EQ(parse_device("cpu"), torch::Device(torch::kCPU));
  try {
    parse_device("gpu0");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "device");
    EXPECT_NE(std::string(e.what()).find("'gpu0' is not a device"), std::string::npos);
  }
  if (!torch::cuda::is_available()) {
    try {
      parse_device("cuda:0");
      FAIL();
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("CUDA is not available"), std::string::npos);
    }
  }
}

TEST(Runtime, EnvironmentReportNamesVersionsAndBlas) {
  const std::string report = environment_report();
  EXPECT_NE(report.find("LibReID"), std::string::npos);
  EXPECT_NE(report.find("LibTorch"), std::string::npos);
  EXPECT_NE(report.find("BLAS"), std::string::npos);
}

}  // namespace
}  // namespace reid
