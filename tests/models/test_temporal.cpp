// Video models: temporal pooling by hand, a clip model equal to its image network applied per
// frame and pooled, image weights loading under backbone., training through the loss set, errors.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/losses/loss_set.h"
#include "reid/models/temporal.h"

namespace reid::models {
namespace {

TemporalModel small(TemporalPooling pooling, const HeadOptions& head = HeadOptions()) {
  torch::manual_seed(1);
  return make_temporal_model("osnet_x0_25", ModelOptions().height(64).width(32).head(head), pooling);
}

TEST(TemporalPooling, AverageMaxAndAttentionByHand) {
  // Two clips of two frames; features are 512-d (OSNet's), the first two coordinates set, the
  // rest zero.
  auto frames = torch::zeros({2, 2, 512});
  frames.narrow(2, 0, 2).copy_(torch::tensor({1.0, 5.0, 3.0, 1.0, 0.0, 2.0, 4.0, 2.0}).view({2, 2, 2}));
  const auto first_two = [](const torch::Tensor& pooled) { return pooled.narrow(1, 0, 2).to(torch::kDouble); };
  const auto expect = [](std::vector<double> values) { return torch::tensor(values, torch::kDouble).view({2, 2}); };
  EXPECT_TRUE(torch::allclose(first_two(small(TemporalPooling::kAvg)->pool(frames)), expect({2, 3, 2, 2})));
  EXPECT_TRUE(torch::allclose(first_two(small(TemporalPooling::kMax)->pool(frames)), expect({3, 5, 4, 2})));
  auto attention = small(TemporalPooling::kAttention);
  // Initialised to equal weights: the mean.
  EXPECT_TRUE(torch::allclose(attention->pool(frames), frames.mean(1)));
  // Score = first coordinate: clip 0 weights softmax(1, 3), clip 1 softmax(0, 4).
  {
    torch::NoGradGuard no_grad;
    attention->named_parameters()["temporal_attention.weight"][0][0].fill_(1.0);
  }
  const double a = 1.0 / (1.0 + std::exp(2.0)), b = 1.0 / (1.0 + std::exp(4.0));
  const auto expected = expect({a * 1 + (1 - a) * 3, a * 5 + (1 - a) * 1, b * 0 + (1 - b) * 4, b * 2 + (1 - b) * 2});
  EXPECT_TRUE(torch::allclose(first_two(attention->pool(frames)), expected, 1e-5, 1e-6));
}

TEST(TemporalModel, EqualsTheImageNetworkPerFramePooled) {
  auto model = small(TemporalPooling::kAvg, HeadOptions().num_classes(5).neck(Neck::kBNNeck).neck_feat(NeckFeat::kBefore));
  model->eval();
  torch::NoGradGuard no_grad;
  const auto clips = torch::randn({2, 3, 3, 64, 32});
  const auto per_frame = model->backbone->forward(clips.flatten(0, 1)).embedding().view({2, 3, -1});
  const auto out = model->forward(clips);
  EXPECT_EQ(out.feature.sizes(), (std::vector<int64_t>{2, 512}));
  EXPECT_TRUE(torch::allclose(out.feature, per_frame.mean(1), 1e-5, 1e-6));
  // One frame ([N, 3, H, W]) is a clip of length 1.
  const auto single = model->forward(clips.select(1, 0)).feature;
  EXPECT_TRUE(torch::allclose(single, per_frame.select(1, 0), 1e-5, 1e-6));
  EXPECT_EQ(model->feature_dim(), 512);
  EXPECT_EQ(model->featuremaps(clips).size(0), 6);
}

TEST(TemporalModel, TrainsThroughTheLossSetAndLoadsImageWeights) {
  auto model = small(TemporalPooling::kAttention, HeadOptions().num_classes(3).neck(Neck::kBNNeck));
  model->train();
  losses::LossSet loss(losses::LossSetOptions().names({"ce", "triplet"}));
  const auto labels = torch::tensor({0, 0, 1, 1, 2, 2});
  const auto out = model->forward(torch::randn({6, 4, 3, 64, 32}), labels);
  EXPECT_EQ(out.logits().sizes(), (std::vector<int64_t>{6, 3}));
  loss->forward(out, labels).total.backward();
  const auto params = model->named_parameters();
  EXPECT_TRUE(params["backbone.conv1.conv.weight"].grad().defined());
  EXPECT_TRUE(params["temporal_attention.weight"].grad().defined());
  EXPECT_TRUE(params.contains("classifier.weight") && params.contains("bottleneck.weight"));

  // An image model's weights (with its classifier) load into the backbone.
  auto image = builtin_models().create("osnet_x0_25", ModelOptions().height(64).width(32).head(HeadOptions().num_classes(9)));
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : image->named_parameters()) state[p.key()] = p.value().detach();
  model->adapt_state_dict(state);
  EXPECT_TRUE(state.count("backbone.conv2.0.conv1.conv.weight"));
  EXPECT_FALSE(state.count("backbone.classifier.weight") || state.count("classifier.weight"));
  EXPECT_TRUE(torch::equal(state.at("backbone.fc.0.weight"), image->named_parameters()["fc.0.weight"]));
}

TEST(TemporalModel, RefusesWhatItCannotDo) {
  auto with_classifier = builtin_models().create("osnet_x0_25", ModelOptions().head(HeadOptions().num_classes(4)));
  EXPECT_THROW(TemporalModelImpl(with_classifier, TemporalPooling::kAvg, HeadOptions()), Error);
  auto model = small(TemporalPooling::kAvg);
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_THROW(model->forward(torch::randn({2, 3, 1, 64, 32})), c10::Error);
  EXPECT_THROW(parse_temporal_pooling("mean"), Error);
}

}  // namespace
}  // namespace reid::models
