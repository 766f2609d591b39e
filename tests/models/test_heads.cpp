#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/models/heads.h"
#include "reid/models/model.h"
#include "reid/models/norm.h"

namespace reid::models {
namespace {

double at(const torch::Tensor& t, int64_t i, int64_t j) { return t[i][j].item<double>(); }

TEST(Pooling, AverageMaxAndGeM) {
  const auto x = torch::tensor({1.0f, 2.0f, 3.0f, 6.0f}).view({1, 1, 2, 2});
  EXPECT_FLOAT_EQ(GlobalPooling(Pooling::kAvg)->forward(x).item<float>(), 3.0f);
  EXPECT_FLOAT_EQ(GlobalPooling(Pooling::kMax)->forward(x).item<float>(), 6.0f);
  // GeM with p = 3: (mean x^3)^(1/3) = ((1 + 8 + 27 + 216) / 4)^(1/3).
  EXPECT_NEAR(GlobalPooling(Pooling::kGeM, 3.0)->forward(x).item<float>(), std::cbrt(63.0), 1e-4);
  EXPECT_NEAR(GlobalPooling(Pooling::kGeM, 1.0)->forward(x).item<float>(), 3.0, 1e-5);
  GeMPooling gem(3.0);
  gem->forward(x).sum().backward();
  ASSERT_TRUE(gem->p.grad().defined()) << "p is learnable";
  EXPECT_NE(gem->p.grad().item<float>(), 0.0f);
}

TEST(Classifier, LinearIsAnAffineMap) {
  Classifier c(ClassifierOptions(2, 3));
  {
    torch::NoGradGuard g;
    c->weight.copy_(torch::tensor({1.0f, 2.0f, 0.0f, 1.0f, -1.0f, 0.0f}).view({3, 2}));
    c->bias.copy_(torch::tensor({0.5f, 0.0f, 1.0f}));
  }
  const auto y = c->forward(torch::tensor({{2.0f, 3.0f}}));
  EXPECT_FLOAT_EQ(at(y, 0, 0), 8.5);
  EXPECT_FLOAT_EQ(at(y, 0, 1), 3.0);
  EXPECT_FLOAT_EQ(at(y, 0, 2), -1.0);
  EXPECT_FALSE(Classifier(ClassifierOptions(2, 3).bias(false))->bias.defined());
}

// Two unit class weights e0, e1 and a feature at 60 degrees from e0 (30 from e1).
struct MarginCase {
  Classifier make(ClassifierType type, double s, double m, int64_t k = 1) {
    Classifier c(ClassifierOptions(2, 2).type(type).scale(s).margin(m).subcenters(k));
    torch::NoGradGuard g;
    if (k == 1) {
      c->weight.copy_(torch::tensor({1.0f, 0.0f, 0.0f, 1.0f}).view({2, 2}));
    } else {
      // class 0 centres: e0 and -e0; class 1 centres: e1 and -e1.
      c->weight.copy_(torch::tensor({1.0f, 0.0f, -1.0f, 0.0f, 0.0f, 1.0f, 0.0f, -1.0f}).view({4, 2}));
    }
    return c;
  }
  torch::Tensor x = torch::tensor({{0.5f, static_cast<float>(std::sqrt(3.0) / 2)}}) * 4.0f;
  torch::Tensor target0 = torch::tensor({0}, torch::kLong);
};

TEST(Classifier, ArcFaceAddsAnAngularMarginToTheTarget) {
  MarginCase mc;
  auto c = mc.make(ClassifierType::kArcFace, 10.0, 0.5);
  const auto y = c->forward(mc.x, mc.target0);
  const double theta0 = M_PI / 3;
  EXPECT_NEAR(at(y, 0, 0), 10.0 * std::cos(theta0 + 0.5), 1e-4);
  EXPECT_NEAR(at(y, 0, 1), 10.0 * std::cos(M_PI / 6), 1e-4) << "non-target keeps s cos";
  c->eval();
  const auto e = c->forward(mc.x, mc.target0);
  EXPECT_NEAR(at(e, 0, 0), 10.0 * std::cos(theta0), 1e-4) << "eval: no margin";
}

TEST(Classifier, ArcFaceBeyondPiMinusMarginStaysMonotonic) {
  MarginCase mc;
  auto c = mc.make(ClassifierType::kArcFace, 1.0, 0.5);
  // Feature opposite to class 0: theta = pi > pi - m, so cos - m sin(m) is used instead.
  const auto y = c->forward(torch::tensor({{-1.0f, 0.0f}}), mc.target0);
  EXPECT_NEAR(at(y, 0, 0), -1.0 - std::sin(M_PI - 0.5) * 0.5, 1e-4);
}

TEST(Classifier, CosFaceSubtractsTheMarginFromTheTargetCosine) {
  MarginCase mc;
  auto c = mc.make(ClassifierType::kCosFace, 30.0, 0.35);
  const auto y = c->forward(mc.x, mc.target0);
  EXPECT_NEAR(at(y, 0, 0), 30.0 * (0.5 - 0.35), 1e-4);
  EXPECT_NEAR(at(y, 0, 1), 30.0 * std::sqrt(3.0) / 2, 1e-4);
}

TEST(Classifier, CircleSoftmaxWeightsBySelfPacedFactors) {
  MarginCase mc;
  const double s = 64.0, m = 0.25;
  auto c = mc.make(ClassifierType::kCircle, s, m);
  const auto y = c->forward(mc.x, mc.target0);
  const double sp = 0.5, sn = std::sqrt(3.0) / 2;
  EXPECT_NEAR(at(y, 0, 0), s * (1 + m - sp) * (sp - (1 - m)), 1e-3);
  EXPECT_NEAR(at(y, 0, 1), s * (sn + m) * (sn - m), 1e-3);
}

TEST(Classifier, SubcenterArcFaceUsesTheClosestCentre) {
  MarginCase mc;
  auto c = mc.make(ClassifierType::kSubcenterArcFace, 10.0, 0.5, 2);
  EXPECT_EQ(c->weight.size(0), 4);
  // Feature near -e1: for class 1 the closest centre is -e1.
  const auto y = c->forward(torch::tensor({{0.0f, -1.0f}}), torch::tensor({0}, torch::kLong));
  EXPECT_NEAR(at(y, 0, 1), 10.0, 1e-4);
  EXPECT_NEAR(at(y, 0, 0), 10.0 * std::cos(M_PI / 2 + 0.5), 1e-4);
}

TEST(Head, BNNeckFreezesItsBiasAndChoosesTheTestFeature) {
  for (auto feat : {NeckFeat::kAfter, NeckFeat::kBefore}) {
    auto model = builtin_models().create(
        "osnet_x0_25",
        ModelOptions().head(HeadOptions().num_classes(5).neck(Neck::kBNNeck).neck_feat(feat)));
    std::map<std::string, torch::Tensor> params;
    for (const auto& p : model->named_parameters()) params[p.key()] = p.value();
    ASSERT_TRUE(params.count("bottleneck.bias"));
    EXPECT_FALSE(params["bottleneck.bias"].requires_grad());
    EXPECT_EQ(params["bottleneck.bias"].abs().sum().item<float>(), 0.0f);
    EXPECT_FALSE(params.count("classifier.bias")) << "BNNeck classifier has no bias";

    const auto x = torch::randn({4, 3, 64, 32});
    model->train();
    const auto out = model->forward(x);
    EXPECT_EQ(out.logits().sizes(), (std::vector<int64_t>{4, 5}));
    // The feature after the BNNeck: the head's own bottleneck on the "global" embedding.
    auto bottleneck = model->named_modules()["bottleneck"]->as<BatchNorm1dImpl>();
    ASSERT_NE(bottleneck, nullptr);
    EXPECT_FALSE(torch::allclose(out.embedding(), bottleneck->forward(out.embedding())));
    model->eval();
    const auto test = model->forward(x);
    EXPECT_FALSE(test.logits().defined()) << "eval computes no logits";
    EXPECT_TRUE(torch::equal(test.feature, feat == NeckFeat::kAfter ? bottleneck->forward(test.embedding()) : test.embedding()));
    EXPECT_TRUE(torch::equal(model->extract_features(x), test.feature));
  }
}

TEST(Head, ParsesNamesAndRejectsUnknownOnes) {
  EXPECT_EQ(parse_pooling("gem"), Pooling::kGeM);
  EXPECT_EQ(parse_neck("bnneck"), Neck::kBNNeck);
  EXPECT_EQ(parse_neck_feat("before"), NeckFeat::kBefore);
  EXPECT_EQ(parse_classifier("subcenter_arcface"), ClassifierType::kSubcenterArcFace);
  EXPECT_THROW(parse_classifier("softmax"), Error);
}

}  // namespace
}  // namespace reid::models
