// Every registered network: forward and backward at two input sizes, eval-mode features, and
// a save/load round trip that reproduces the outputs exactly.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/models/model.h"
#include "reid/models/weights.h"
#include "support.h"

namespace reid::models {
namespace {

class EveryModel : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryModel, ForwardBackwardAtTwoSizes) {
  for (auto size : {std::make_pair(64, 32), std::make_pair(256, 128)}) {
    SCOPED_TRACE(std::to_string(size.first) + "x" + std::to_string(size.second));
    // Built for the input size (a ViT's position embeddings depend on it; CNNs ignore it).
    torch::manual_seed(0);
    auto model = builtin_models().create(
        GetParam(), ModelOptions().height(size.first).width(size.second).head(HeadOptions().num_classes(7)));
    const int64_t dim = model->feature_dim();
    model->train();
    model->zero_grad();
    const auto x = torch::randn({2, 3, size.first, size.second});
    const auto out = model->forward(x);
    // The test feature (a multi-branch model's concatenation) is feature_dim wide in training too.
    EXPECT_EQ(out.feature.sizes(), (std::vector<int64_t>{2, dim}));
    // Every classifier's logits (MGN has one per branch); backward through all of them.
    ASSERT_FALSE(out.class_logits.empty());
    auto total = torch::zeros({});
    for (const auto& [name, logits] : out.class_logits) {
      EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 7})) << name;
      total = total + logits.sum();
    }
    total.backward();
    int64_t nonzero = 0, trainable = 0;
    for (const auto& p : model->named_parameters()) {
      if (!p.value().requires_grad()) continue;
      // A non-local block starts as the identity (its last BN scale is 0, Wang et al. 2018), so
      // its convolutions get zero gradients at initialisation: connected, but not counted.
      const bool starts_closed = p.key().find("NL_") != std::string::npos;
      trainable += !starts_closed;
      // Connected to the graph: a gradient exists (it may be zero where a ReLU is closed, e.g.
      // the single hidden unit of osnet_x0_25's first gates).
      ASSERT_TRUE(p.value().grad().defined()) << p.key() << " is not connected to the output";
      if (!starts_closed && p.value().grad().abs().sum().item<double>() > 0) ++nonzero;
    }
    EXPECT_GE(nonzero, trainable * 95 / 100);
    model->eval();
    const auto f = model->extract_features(x);
    EXPECT_EQ(f.sizes(), (std::vector<int64_t>{2, dim}));
    EXPECT_TRUE(torch::isfinite(f).all().item<bool>());
  }
}

TEST_P(EveryModel, SaveLoadRoundTripGivesIdenticalOutputs) {
  test::TempDir dir;
  torch::manual_seed(1);
  auto a = builtin_models().create(GetParam(), ModelOptions().height(64).width(32).head(HeadOptions().num_classes(5)));
  // Move the BN running statistics away from their initial values.
  a->train();
  {
    torch::NoGradGuard g;
    a->forward(torch::randn({4, 3, 64, 32}));
  }
  const auto path = (dir / "weights.pt").string();
  save_weights(*a, path);
  torch::manual_seed(2);
  auto b = builtin_models().create(GetParam(), ModelOptions().height(64).width(32).head(HeadOptions().num_classes(5)));
  const auto report = load_weights(*b, path, /*strict=*/true);
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty() && report.mismatched.empty());
  a->eval();
  b->eval();
  const auto x = torch::randn({2, 3, 64, 32});
  EXPECT_TRUE(torch::equal(a->extract_features(x), b->extract_features(x)));
}

TEST_P(EveryModel, ChannelsLastGivesTheSameFeaturesAndSavesPlainWeights) {
  test::TempDir dir;
  torch::manual_seed(3);
  auto model = builtin_models().create(GetParam(), ModelOptions().height(64).width(32).head(HeadOptions().num_classes(5)));
  model->eval();
  const auto x = torch::randn({2, 3, 64, 32});
  const auto expected = model->extract_features(x);
  to_channels_last(*model);
  int64_t converted = 0;
  for (const auto& p : model->parameters())
    if (p.dim() == 4) converted += p.is_contiguous(at::MemoryFormat::ChannelsLast) && !p.is_contiguous();
  EXPECT_GT(converted, 0);
  const auto got = model->extract_features(x.contiguous(at::MemoryFormat::ChannelsLast));
  // Absolute tolerance relative to the features' scale: a deep untrained network in eval mode
  // (MGN: features up to ~60) flips post-ReLU values near 0 by more than 1e-5.
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-5 * scale)) << (got - expected).abs().max().item<float>();
  // Saved weights are plain contiguous tensors that load into an ordinary (NCHW) model.
  const auto path = (dir / "weights.pt").string();
  save_weights(*model, path);
  auto plain = builtin_models().create(GetParam(), ModelOptions().height(64).width(32).head(HeadOptions().num_classes(5)));
  load_weights(*plain, path, /*strict=*/true);
  plain->eval();
  EXPECT_TRUE(torch::allclose(plain->extract_features(x), expected, 1e-5, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Models, EveryModel, ::testing::ValuesIn(builtin_models().names()),
                         [](const auto& info) { return info.param; });

TEST(Models, EveryHeadVariantTrains) {
  for (auto pooling : {Pooling::kAvg, Pooling::kMax, Pooling::kGeM})
    for (auto neck : {Neck::kNone, Neck::kBNNeck})
      for (auto type : {ClassifierType::kLinear, ClassifierType::kArcFace, ClassifierType::kCosFace,
                        ClassifierType::kCircle, ClassifierType::kSubcenterArcFace}) {
        auto model = builtin_models().create(
            "osnet_x0_25",
            ModelOptions().head(HeadOptions().num_classes(3).pooling(pooling).neck(neck).classifier(type)));
        model->train();
        const auto targets = torch::tensor({0, 1, 2}, torch::kLong);
        const auto out = model->forward(torch::randn({3, 3, 64, 32}), targets);
        ASSERT_EQ(out.logits().sizes(), (std::vector<int64_t>{3, 3}));
        out.logits().logsumexp(1).sum().backward();
        EXPECT_TRUE(torch::isfinite(out.logits()).all().item<bool>());
      }
}

TEST(Models, WithoutClassesThereIsNoClassifier) {
  auto model = builtin_models().create("osnet_x0_25", ModelOptions());
  for (const auto& p : model->named_parameters()) EXPECT_NE(p.key().rfind("classifier", 0), 0u);
  model->train();
  EXPECT_FALSE(model->forward(torch::randn({2, 3, 64, 32})).logits().defined());
}

TEST(Models, UnknownNameListsTheRegisteredOnes) {
  try {
    builtin_models().create("osnet_x2_0", ModelOptions());
    FAIL();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("unknown model 'osnet_x2_0'"), std::string::npos);
    EXPECT_NE(message.find("osnet_x1_0"), std::string::npos);
    EXPECT_NE(message.find("resnet50_ibn_a"), std::string::npos);
  }
}

}  // namespace
}  // namespace reid::models
