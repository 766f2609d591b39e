#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/models/osnet.h"
#include "reid/models/summary.h"

namespace reid::models {
namespace {

ReidModel build(const std::string& name, int64_t num_classes = 0) {
  return builtin_models().create(name, ModelOptions().head(HeadOptions().num_classes(num_classes)));
}

TEST(OSNet, ParameterCountsEqualTorchreid) {
  // torchreid's counts without the classifier.
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"osnet_x1_0", 2169508}, {"osnet_x0_75", 1285754}, {"osnet_x0_5", 630034},
      {"osnet_x0_25", 201864}, {"osnet_ibn_x1_0", 2170532}};
  for (const auto& [name, count] : expected) {
    const auto model = build(name, 751);
    EXPECT_EQ(count_parameters(*model, "classifier"), count) << name;
    EXPECT_EQ(count_parameters(*model) - count, 512 * 751 + 751) << name << ": linear classifier with bias";
  }
}

TEST(OSNet, ParameterNamesEqualTorchreid) {
  const auto model = build("osnet_x1_0", 10);
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  for (const auto& p : model->named_buffers()) names.insert(p.key());
  for (const std::string name :
       {"conv1.conv.weight", "conv1.bn.weight", "conv1.bn.running_mean", "conv2.0.conv1.conv.weight",
        "conv2.0.conv2a.conv1.weight", "conv2.0.conv2a.conv2.weight", "conv2.0.conv2a.bn.weight",
        "conv2.0.conv2b.1.conv1.weight", "conv2.0.conv2d.3.bn.bias", "conv2.0.gate.fc1.weight",
        "conv2.0.gate.fc1.bias", "conv2.0.gate.fc2.bias", "conv2.0.conv3.conv.weight",
        "conv2.0.conv3.bn.weight", "conv2.0.downsample.conv.weight", "conv2.2.0.conv.weight",
        "conv2.2.0.bn.num_batches_tracked", "conv3.1.conv2c.2.conv2.weight",
        "conv4.1.gate.fc2.weight", "conv5.conv.weight", "conv5.bn.bias", "fc.0.weight", "fc.0.bias",
        "fc.1.weight", "fc.1.running_var", "classifier.weight", "classifier.bias"})
    EXPECT_TRUE(names.count(name)) << name;
  EXPECT_FALSE(names.count("conv2.1.downsample.conv.weight")) << "no projection when widths match";
  EXPECT_FALSE(names.count("conv4.2.0.conv.weight")) << "conv4 has no transition";

  const auto ibn = build("osnet_ibn_x1_0");
  std::set<std::string> ibn_names;
  for (const auto& p : ibn->named_parameters()) ibn_names.insert(p.key());
  EXPECT_TRUE(ibn_names.count("conv2.0.IN.weight"));
  EXPECT_TRUE(ibn_names.count("conv2.1.IN.bias"));
  EXPECT_FALSE(ibn_names.count("conv3.0.IN.weight"));
  std::set<std::string> ibn_buffers;
  for (const auto& b : ibn->named_buffers()) ibn_buffers.insert(b.key());
  EXPECT_FALSE(ibn_buffers.count("conv1.bn.running_mean")) << "conv1 uses instance norm";
}

TEST(OSNet, StreamsAreConfigurable) {
  const auto two = builtin_models().create("osnet_x0_25", ModelOptions().streams(2));
  std::set<std::string> names;
  for (const auto& p : two->named_parameters()) names.insert(p.key());
  EXPECT_TRUE(names.count("conv2.0.conv2b.1.conv1.weight"));
  EXPECT_FALSE(names.count("conv2.0.conv2c.0.conv1.weight"));
  EXPECT_LT(count_parameters(*two), count_parameters(*build("osnet_x0_25")));
}

TEST(OSNet, LiteConvAndGateShapes) {
  LiteConv3x3 lite(8, 16);
  EXPECT_EQ(lite->conv2->weight.sizes(), (std::vector<int64_t>{16, 1, 3, 3})) << "depthwise";
  EXPECT_EQ(lite->forward(torch::randn({2, 8, 6, 5})).sizes(), (std::vector<int64_t>{2, 16, 6, 5}));
  AggregationGate gate(32);
  EXPECT_EQ(gate->fc1->weight.sizes(), (std::vector<int64_t>{2, 32, 1, 1}));
  // The gate scales channels by values in (0, 1): output has the input's signs and smaller magnitude.
  const auto x = torch::randn({2, 32, 4, 4});
  const auto y = gate->forward(x);
  EXPECT_TRUE(torch::all((y * x).ge(0)).item<bool>());
  EXPECT_TRUE(torch::all(y.abs().le(x.abs())).item<bool>());
  // One gate weight per channel: y / x is constant over space.
  const auto ratio = (y / x).flatten(2);
  EXPECT_LT((ratio - ratio.mean(2, true)).abs().max().item<double>(), 1e-4);
}

TEST(OSNet, MultAddsMatchThePaper) {
  // OSNet x1.0: 0.98 G mult-adds at 256x128 (paper, Table 1); x0.25: 0.08 G.
  const auto x1 = summarize(*build("osnet_x1_0", 751), 256, 128);
  EXPECT_NEAR(static_cast<double>(x1.mult_adds) / 1e9, 0.98, 0.02) << x1.text();
  const auto x025 = summarize(*build("osnet_x0_25", 751), 256, 128);
  EXPECT_NEAR(static_cast<double>(x025.mult_adds) / 1e9, 0.08, 0.01) << x025.text();
}

}  // namespace
}  // namespace reid::models
