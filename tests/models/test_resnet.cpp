#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/models/resnet.h"

namespace reid::models {
namespace {

TEST(ResNet, ParameterCountAndTorchvisionNames) {
  const auto model = builtin_models().create("resnet50", ModelOptions());
  EXPECT_EQ(count_parameters(*model), 23508032) << "torchvision's resnet50 without fc";
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  for (const auto& b : model->named_buffers()) names.insert(b.key());
  for (const std::string name :
       {"conv1.weight", "bn1.weight", "bn1.running_mean", "bn1.num_batches_tracked",
        "layer1.0.conv1.weight", "layer1.0.bn3.bias", "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_var", "layer2.3.conv2.weight", "layer3.5.bn2.weight",
        "layer4.2.conv3.weight", "layer4.0.downsample.0.weight"})
    EXPECT_TRUE(names.count(name)) << name;
  EXPECT_FALSE(names.count("layer1.1.downsample.0.weight"));
  EXPECT_FALSE(names.count("fc.weight"));
}

TEST(ResNet, LastStrideSetsTheFeatureMapSize) {
  torch::NoGradGuard no_grad;
  for (int64_t stride : {1, 2}) {
    auto model = builtin_models().create("resnet50", ModelOptions().last_stride(stride));
    model->eval();
    const auto map = model->featuremaps(torch::randn({1, 3, 256, 128}));
    EXPECT_EQ(map.sizes(), (std::vector<int64_t>{1, 2048, stride == 1 ? 16 : 8, stride == 1 ? 8 : 4}));
  }
}

TEST(ResNet, IbnAUsesInstanceNormInLayers1To3) {
  const auto model = builtin_models().create("resnet50_ibn_a", ModelOptions());
  EXPECT_EQ(count_parameters(*model), 23508032) << "IN + BN halves hold as many affine parameters";
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  EXPECT_TRUE(names.count("layer1.0.bn1.IN.weight"));
  EXPECT_TRUE(names.count("layer3.5.bn1.BN.weight"));
  EXPECT_FALSE(names.count("layer4.0.bn1.IN.weight"));
  EXPECT_TRUE(names.count("layer4.0.bn1.weight"));
  IBN ibn(64);
  EXPECT_EQ(ibn->IN->options.num_features(), 32);
  EXPECT_EQ(ibn->BN->options.num_features(), 32);
  ibn->eval();
  const auto x = torch::randn({2, 64, 5, 5}) * 3 + 1;
  const auto y = ibn->forward(x);
  // The instance-normalised half has zero mean per image and channel.
  EXPECT_LT(y.narrow(1, 0, 32).mean({2, 3}).abs().max().item<double>(), 1e-4);
}

}  // namespace
}  // namespace reid::models
