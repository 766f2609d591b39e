#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/models/osnet.h"
#include "reid/models/summary.h"
#include "reid/models/weights.h"
#include "support.h"

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

// OSNet-AIN: a PyTorch OSNet-AIN with torchreid's names (written in tests/python/osnet_ain_interop.py)
// loads strictly by name at every width and gives the same feature: instance norm in conv1 and
// inside the residual branch of conv2.0, conv2.1, conv3.1 and conv4.0, streams as
// conv2.<t>.layers.<i>, transitions pool2 / pool3.
TEST(OSNetAIN, TorchreidNamedWeightsLoadAndGiveTheSameFeatureAtEveryWidth) {
  REID_REQUIRE_PYTHON();
  for (const auto& [name, width] : std::vector<std::pair<std::string, std::string>>{
           {"osnet_ain_x1_0", "1.0"}, {"osnet_ain_x0_75", "0.75"}, {"osnet_ain_x0_5", "0.5"}, {"osnet_ain_x0_25", "0.25"}}) {
    test::TempDir dir;
    const auto r = test::run_command(test::python() + " " +
                                     (test::source_dir() / "tests/python/osnet_ain_interop.py").string() + " export " +
                                     width + " " + dir.path().string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto io = read_state_dict((dir / "osnet_ain_io.pt").string());
    auto model = builtin_models().create(name, ModelOptions().head(HeadOptions().num_classes(7)));
    EXPECT_EQ(count_parameters(*model, "classifier"), io.at("parameters").item<int64_t>()) << name;
    const auto report = load_weights(*model, (dir / "osnet_ain.pt").string(), /*strict=*/true);
    EXPECT_TRUE(report.missing.empty() && report.unexpected.empty()) << report.summary();
    model->eval();
    torch::NoGradGuard no_grad;
    const auto feature = model->extract_features(io.at("input"));
    const auto reference = io.at("feature");
    EXPECT_LT(((feature - reference).norm() / reference.norm()).item<double>(), 1e-5) << name;
  }
}

TEST(OSNetAIN, InstanceNormSitsWhereTheSearchPutIt) {
  const auto model = build("osnet_ain_x1_0", 10);
  std::set<std::string> names, buffers;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  for (const auto& b : model->named_buffers()) buffers.insert(b.key());
  for (const std::string name : {"conv2.0.IN.weight", "conv2.1.IN.weight", "conv3.1.IN.weight", "conv4.0.IN.weight",
                                 "conv2.0.conv2.3.layers.3.bn.weight", "pool2.0.conv.weight", "pool3.0.bn.weight",
                                 "conv3.0.conv3.bn.weight", "conv4.1.conv3.bn.weight", "conv1.bn.weight"})
    EXPECT_TRUE(names.count(name)) << name;
  for (const std::string name : {"conv3.0.IN.weight", "conv4.1.IN.weight", "conv2.0.conv3.bn.weight",
                                 "conv2.0.conv2a.conv1.weight", "conv2.2.0.conv.weight"})
    EXPECT_FALSE(names.count(name)) << name;
  EXPECT_FALSE(buffers.count("conv1.bn.running_mean")) << "conv1 uses instance norm";
}

}  // namespace
}  // namespace reid::models
