// MGN (parameter count against an independent PyTorch model, outputs, stripes, ResNet-50
// weights into the trunk and every branch) and AGW's non-local blocks.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/models/mgn.h"
#include "reid/models/resnet.h"
#include "reid/models/weights.h"
#include "support.h"

namespace reid::models {
namespace {

// A ResNet-50-shaped MGN with one block per stage (two in layer3): the same code, quick.
MGNOptions tiny(int64_t classes) {
  return MGNOptions().layers({1, 1, 2, 1}).head(HeadOptions().num_classes(classes).pooling(Pooling::kMax));
}

TEST(MGN, ParameterCountMatchesAnIndependentPyTorchModel) {
  // python3 scripts/mgn_parameter_count.py 751 (a plain PyTorch MGN written from the paper).
  EXPECT_EQ(count_parameters(MGNImpl(MGNOptions().head(HeadOptions().num_classes(751)))), 70351800);
  EXPECT_EQ(count_parameters(MGNImpl(MGNOptions())), 68807744);
  auto model = builtin_models().create("mgn_resnet50", ModelOptions().head(HeadOptions().num_classes(751)));
  EXPECT_EQ(count_parameters(*model), 70351800);
  EXPECT_EQ(model->feature_dim(), 2048);
}

TEST(MGN, EightReducedFeaturesThreeEmbeddingsEightClassifiers) {
  torch::manual_seed(0);
  MGNImpl model(tiny(5));
  const auto x = torch::randn({4, 3, 96, 32});
  model.train();
  const auto out = model.forward(x, torch::tensor({0, 1, 2, 3}, torch::kLong));
  ASSERT_EQ(out.embeddings.size(), 3u);
  ASSERT_EQ(out.class_logits.size(), 8u);
  const std::vector<std::string> names = {"global", "part2_global", "part3_global", "part2_1",
                                          "part2_2", "part3_1", "part3_2", "part3_3"};
  EXPECT_EQ(model.output_names(), names);
  for (std::size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(out.class_logits[i].first, names[i]);
    EXPECT_EQ(out.class_logits[i].second.sizes(), (std::vector<int64_t>{4, 5}));
  }
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out.embeddings[i].first, names[i]);
    EXPECT_EQ(out.embeddings[i].second.sizes(), (std::vector<int64_t>{4, 256}));
    // The test feature holds each reduction in order.
    EXPECT_TRUE(torch::equal(out.feature.slice(1, 256 * i, 256 * (i + 1)), out.embeddings[i].second));
  }
  EXPECT_EQ(model.embedding_dims(), (std::vector<NamedWidth>{{"global", 256}, {"part2_global", 256}, {"part3_global", 256}}));
  model.eval();
  const auto f = model.extract_features(x);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{4, 2048}));
  EXPECT_TRUE((f >= 0).all().item<bool>()) << "reductions end in a ReLU";
}

TEST(MGN, StripesAreAdaptivePoolingBins) {
  // Max over each stripe equals adaptive max pooling to p x 1, for even and uneven heights.
  for (int64_t rows : {4, 7, 8, 24}) {
    const auto map = torch::randn({2, 3, rows, 5});
    for (int64_t p : {1, 2, 3}) {
      const auto expected = std::get<0>(torch::adaptive_max_pool2d(map, {p, 1}));
      const auto stripes = stripe_rows(rows, p);
      ASSERT_EQ(stripes.size(), static_cast<std::size_t>(p));
      for (int64_t i = 0; i < p; ++i) {
        const auto [begin, end] = stripes[static_cast<std::size_t>(i)];
        const auto got = map.slice(2, begin, end).amax({2, 3});
        EXPECT_TRUE(torch::equal(got, expected.select(2, i).select(2, 0))) << rows << " rows, part " << i << " of " << p;
      }
    }
  }
  EXPECT_THROW(stripe_rows(2, 3), c10::Error);
}

TEST(MGN, ResNet50WeightsLoadIntoTheTrunkAndEveryBranch) {
  test::TempDir dir;
  torch::manual_seed(1);
  ResNetImpl resnet(ResNetOptions().layers({1, 1, 2, 1}));
  const auto path = (dir / "resnet.pt").string();
  save_weights(resnet, path);
  // fast-reid's names: the same under "backbone.".
  StateDict prefixed;
  for (const auto& [key, value] : state_dict(resnet)) prefixed["backbone." + key] = value;
  const auto fastreid = (dir / "fastreid.pt").string();
  write_state_dict(prefixed, fastreid);
  for (const auto& file : {path, fastreid}) {
    torch::manual_seed(2);
    MGNImpl mgn(tiny(3));
    const auto report = load_weights(mgn, file, /*strict=*/false);
    EXPECT_TRUE(report.unexpected.empty() && report.mismatched.empty()) << report.summary();
    for (const auto& key : report.missing)
      EXPECT_TRUE(key.rfind("reduction.", 0) == 0 || key.rfind("classifier.", 0) == 0) << key << " was not loaded";
    const auto m = state_dict(mgn), r = state_dict(resnet);
    EXPECT_TRUE(torch::equal(m.at("conv1.weight"), r.at("conv1.weight")));
    EXPECT_TRUE(torch::equal(m.at("layer3.0.conv1.weight"), r.at("layer3.0.conv1.weight")));
    for (const char* b : {"b1", "b2", "b3"}) {
      EXPECT_TRUE(torch::equal(m.at(std::string(b) + ".0.0.conv2.weight"), r.at("layer3.1.conv2.weight"))) << b;
      EXPECT_TRUE(torch::equal(m.at(std::string(b) + ".1.0.bn3.running_var"), r.at("layer4.0.bn3.running_var"))) << b;
    }
  }
}

TEST(NonLocal, StartsAsTheIdentityAndMatchesTheFormula) {
  torch::manual_seed(3);
  NonLocal block(8);
  const auto x = torch::randn({2, 8, 3, 2});
  block->eval();
  EXPECT_TRUE(torch::equal(block->forward(x), x)) << "zero-initialised output batch norm";
  // With a non-zero output scale: z = x + BN(W conv(y)), y = (theta^T phi / N) g, by hand.
  auto params = block->named_parameters();
  {
    torch::NoGradGuard g;
    params["W.1.weight"].fill_(1.0);
  }
  auto conv = [&](const std::string& name, const torch::Tensor& in) {
    return torch::conv2d(in, params[name + ".weight"], params[name + ".bias"]);
  };
  const auto theta = conv("theta", x).flatten(2), phi = conv("phi", x).flatten(2), gx = conv("g", x).flatten(2);
  const auto y = torch::bmm(gx, torch::bmm(theta.transpose(1, 2), phi).transpose(1, 2) / 6.0).view({2, 4, 3, 2});
  const auto buffers = block->named_buffers();
  const auto w = conv("W.0", y);
  const auto bn = (w - buffers["W.1.running_mean"].view({1, -1, 1, 1})) /
                      (buffers["W.1.running_var"].view({1, -1, 1, 1}) + 1e-5).sqrt() * params["W.1.weight"].view({1, -1, 1, 1}) +
                  params["W.1.bias"].view({1, -1, 1, 1});
  EXPECT_TRUE(torch::allclose(block->forward(x), x + bn, 1e-5, 1e-5));
}

TEST(NonLocal, AgwPlacesTwoInLayer2AndThreeInLayer3) {
  auto model = builtin_models().create("resnet50_nl", ModelOptions());
  std::vector<std::string> blocks;
  for (const auto& p : model->named_parameters())
    if (p.key().find(".g.weight") != std::string::npos) blocks.push_back(p.key());
  EXPECT_EQ(blocks, (std::vector<std::string>{"NL_2.0.g.weight", "NL_2.1.g.weight", "NL_3.0.g.weight",
                                             "NL_3.1.g.weight", "NL_3.2.g.weight"}));
  // ResNet-50 + 5 blocks of 4 1x1 convolutions (with bias) and a batch norm.
  const int64_t nl2 = 3 * (512 * 256 + 256) + 256 * 512 + 512 + 2 * 512;
  const int64_t nl3 = 3 * (1024 * 512 + 512) + 512 * 1024 + 1024 + 2 * 1024;
  auto plain = builtin_models().create("resnet50", ModelOptions());
  EXPECT_EQ(count_parameters(*model), count_parameters(*plain) + 2 * nl2 + 3 * nl3);
}

}  // namespace
}  // namespace reid::models
