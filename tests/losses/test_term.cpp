// Loss terms as registered objects: the registry, multi-branch outputs (MGN's loss set), WRT's
// values by hand, the center loss's per-feature centres, and the one distance implementation.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/eval/distance.h"
#include "reid/losses/cross_entropy.h"
#include "reid/losses/loss_set.h"
#include "support.h"

namespace reid::losses {
namespace {

// Four 1-D points: ids 0 at {0, 1} and ids 1 at {3, 10}.
torch::Tensor points() { return torch::tensor({{0.0}, {1.0}, {3.0}, {10.0}}, torch::kDouble); }
torch::Tensor labels() { return torch::tensor({0, 0, 1, 1}, torch::kLong); }
double softplus(double x) { return std::log1p(std::exp(x)); }

TEST(Wrt, HandComputedOnFourPoints) {
  // Every anchor has one positive (weight 1); its two negatives are weighted by softmax(-d).
  auto soft_negative = [](double a, double b) {
    const double wa = std::exp(-a), wb = std::exp(-b);
    return (a * wa + b * wb) / (wa + wb);
  };
  const double fp[] = {1, 1, 7, 7};
  const double fn[] = {soft_negative(3, 10), soft_negative(2, 9), soft_negative(3, 2), soft_negative(10, 9)};
  double expected = 0;
  for (int i = 0; i < 4; ++i) expected += softplus(fp[i] - fn[i]) / 4;
  const auto r = weighted_regularized_triplet(points(), labels());
  EXPECT_NEAR(r.loss.item<double>(), expected, 1e-6);  // sqrt(1e-12) floor on distances
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(r.weighted_positive[i].item<double>(), fp[i], 1e-6);
    EXPECT_NEAR(r.weighted_negative[i].item<double>(), fn[i], 1e-6);
  }
  EXPECT_EQ(r.valid_anchors.item<int64_t>(), 4);
}

TEST(Wrt, WeightsFollowTheHardestPairsAndStayFiniteFarApart) {
  // Two positives at distances 1 and 3 from anchor 0: softmax(d) weights e^1, e^3.
  const auto x = torch::tensor({{0.0}, {1.0}, {3.0}, {1000.0}}, torch::kDouble);
  const auto y = torch::tensor({0, 0, 0, 1}, torch::kLong);
  auto features = x.clone().requires_grad_(true);
  const auto r = weighted_regularized_triplet(features, y);
  const double w1 = std::exp(1.0), w3 = std::exp(3.0);
  EXPECT_NEAR(r.weighted_positive[0].item<double>(), (1 * w1 + 3 * w3) / (w1 + w3), 1e-6);
  // Distances of 1000 would underflow an unshifted exp(-d): the weights still sum to 1.
  EXPECT_NEAR(r.weighted_negative[0].item<double>(), 1000.0, 1e-6);
  r.loss.backward();
  EXPECT_TRUE(torch::isfinite(features.grad()).all().item<bool>());
}

TEST(Wrt, AnchorsWithoutPositivesAreLeftOut) {
  const auto x = torch::tensor({{0.0}, {1.0}, {5.0}}, torch::kDouble);
  const auto r = weighted_regularized_triplet(x, torch::tensor({0, 0, 1}, torch::kLong));
  EXPECT_EQ(r.valid_anchors.item<int64_t>(), 2);
  // Anchors 0 and 1: positive at 1, single negative at 5 and 4.
  EXPECT_NEAR(r.loss.item<double>(), (softplus(1 - 5) + softplus(1 - 4)) / 2, 1e-6);
  const auto none = weighted_regularized_triplet(x, torch::tensor({0, 1, 2}, torch::kLong));
  EXPECT_EQ(none.loss.item<double>(), 0.0);
}

// MGN's outputs: 3 triplet embeddings and 8 classifiers.
models::ReidOutput multi_branch_output() {
  models::ReidOutput out;
  const auto p = points();
  out.embeddings = {{"global", p}, {"part2_global", p * 2}, {"part3_global", p * 3}};
  for (int i = 0; i < 8; ++i)
    out.class_logits.emplace_back("c" + std::to_string(i), torch::tensor({{2.0, 0.0}, {0.0, 1.0}, {1.0, 1.0}, {0.0, 3.0}},
                                                                         torch::kDouble) * (i + 1));
  return out;
}

TEST(LossTerms, MultiBranchValuesAreMeansOverTheBranches) {
  LossSet set(LossSetOptions().names({"ce", "triplet"}).ce_epsilon(0.0).triplet(TripletOptions().margin(0.3)));
  const auto out = multi_branch_output();
  const auto r = set->forward(out, labels());
  // Triplet on k * points: only anchor 2 is active, with gap 5k: (5k + 0.3) / 4 for k = 1, 2, 3.
  EXPECT_NEAR(r.terms[1].second.item<double>(), (5.3 + 10.3 + 15.3) / 12, 1e-9);
  // Cross-entropy of (i + 1) * L for the 8 classifiers, by hand: rows [2,0] y0, [0,1] y0,
  // [1,1] y1, [0,3] y1 scaled by s.
  double ce = 0;
  for (int s = 1; s <= 8; ++s) {
    auto nll = [&](double target, double other) { return std::log(std::exp(s * target) + std::exp(s * other)) - s * target; };
    ce += (nll(2, 0) + nll(0, 1) + nll(1, 1) + nll(3, 0)) / 4 / 8;
  }
  EXPECT_NEAR(r.terms[0].second.item<double>(), ce, 1e-9);
  EXPECT_NEAR(r.total.item<double>(), ce + (5.3 + 10.3 + 15.3) / 12, 1e-9);
  // Diagnostics of the main branch.
  EXPECT_EQ(r.stats[0].first, "accuracy");
  EXPECT_DOUBLE_EQ(r.stats[0].second.item<double>(), 0.5);
}

TEST(LossTerms, SingleBranchListsGiveTheSingleFeatureNumbersExactly) {
  torch::manual_seed(0);
  const auto feature = torch::randn({8, 5}), logits = torch::randn({8, 4});
  models::ReidOutput listed;
  listed.embeddings = {{"global", feature}};
  listed.class_logits = {{"global", logits}};
  const auto y = torch::tensor({0, 0, 1, 1, 2, 2, 3, 3}, torch::kLong);
  LossSet set(LossSetOptions().names({"ce", "triplet", "center"}).num_classes(4).feature_dim(5));
  const auto a = set->forward(listed, y);
  // Bit for bit the fixed-slot formula the loss set had before terms were registered objects.
  const auto old = 1.0 * cross_entropy_label_smooth(logits, y, 0.1) + 1.0 * batch_hard_triplet(feature, y).loss +
                   0.0005 * set->center()->forward(feature, y);
  EXPECT_TRUE(torch::equal(a.total, old));
  // The module tree (what a checkpoint holds under "loss") is the one checkpoints written before
  // terms were objects have: the center loss only, so they load.
  std::vector<std::string> children;
  for (const auto& child : set->named_children()) children.push_back(child.key());
  EXPECT_EQ(children, std::vector<std::string>{"center"});
}

TEST(Wrt, GradientMatchesFiniteDifferences) {
  torch::manual_seed(5);
  const auto x = torch::randn({8, 3}, torch::kDouble);
  const auto y = torch::tensor({0, 0, 1, 1, 2, 2, 3, 3}, torch::kLong);
  EXPECT_LT(test::gradient_error([&](const torch::Tensor& f) { return weighted_regularized_triplet(f, y).loss; }, x),
            1e-6);
}

TEST(LossTerms, CenterLossHasCentresPerEmbeddingAndItsOwnOptimizer) {
  LossSet set(LossSetOptions()
                  .names({"center"})
                  .num_classes(3)
                  .center_weight(0.25)
                  .center_lr(0.1)
                  .embeddings({{"global", 4}, {"part2_global", 2}}));
  std::vector<std::string> names;
  for (const auto& p : set->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"center.centers", "center.centers_part2_global"}));
  auto term = set->term("center");
  ASSERT_TRUE(term);
  EXPECT_DOUBLE_EQ(term->optimizer_grad_scale(), 4.0);
  auto optimizer = term->make_optimizer();
  ASSERT_TRUE(optimizer);
  EXPECT_EQ(optimizer->param_groups().front().params().size(), 2u);
  // Only the named inputs: one set of centres, named as a single-branch model's.
  LossSet only(LossSetOptions().names({"center"}).num_classes(3).center_inputs({"part2_global"}).embeddings(
      {{"global", 4}, {"part2_global", 2}}));
  ASSERT_EQ(only->parameters().size(), 1u);
  EXPECT_EQ(only->parameters()[0].size(1), 2);
  EXPECT_THROW(LossSet(LossSetOptions().names({"center"}).num_classes(3).center_inputs({"nope"}).embeddings(
                   {{"global", 4}})),
               c10::Error);
}

// A term from outside the library: the mean squared norm of the features.
class NormTerm : public LossTermImpl {
 public:
  TermValue evaluate(const models::ReidOutput& output, const torch::Tensor&) override {
    const auto features = select_inputs(output, TermInput::kEmbeddings, {"part2_global"}, "norm");
    return {features.front().pow(2).sum(1).mean(), {{"norm_stat", torch::tensor(1.0)}}};
  }
};

TEST(LossTerms, RegistryBuildsTermsOfYourOwnAndNamesTheValidOnes) {
  auto registry = builtin_losses();
  EXPECT_EQ(registry.names(), (std::vector<std::string>{"ce", "center", "triplet", "wrt"}));
  registry.add("norm", [](const LossSetOptions&) {
    auto term = std::make_shared<NormTerm>();
    term->set_weight(0.5);
    return term;
  });
  LossSet set(LossSetOptions().names({"norm"}), registry);
  const auto r = set->forward(multi_branch_output(), labels());
  // part2_global = 2 * points: mean of 4 * (0, 1, 9, 100).
  EXPECT_NEAR(r.terms[0].second.item<double>(), 110.0, 1e-9);
  EXPECT_NEAR(r.total.item<double>(), 55.0, 1e-9);
  EXPECT_EQ(r.stats[0].first, "norm_stat");
  try {
    LossSet bad(LossSetOptions().names({"tripplet"}), registry);
    FAIL() << "an unknown term was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'triplet'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("norm"), std::string::npos) << e.what();
  }
  // A term asking for an output the model does not have names it.
  models::ReidOutput single;
  single.embeddings = {{"global", points()}};
  try {
    set->forward(single, labels());
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("part2_global"), std::string::npos) << e.what();
  }
}

TEST(LossTerms, EveryRegisteredTermConstructsAndRuns) {
  for (const auto& name : builtin_losses().names()) {
    SCOPED_TRACE(name);
    LossSet set(LossSetOptions().names({name}).num_classes(2).feature_dim(1));
    auto out = multi_branch_output();
    out.embeddings.resize(1);
    const auto r = set->forward(out, labels());
    EXPECT_TRUE(std::isfinite(r.total.item<double>()));
  }
}

TEST(Distance, OneImplementationForLossesAndEvaluation) {
  torch::manual_seed(4);
  const auto a = torch::randn({6, 8}), b = torch::randn({5, 8});
  const auto d2 = eval::distance_matrix(a, b, eval::Metric::kEuclidean);
  EXPECT_TRUE(torch::allclose(d2, (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(2), 1e-5, 1e-5));
  // The loss's euclidean distance is its square root; evaluation's blocks are the same numbers.
  EXPECT_TRUE(torch::equal(pairwise_distance(a, b, Distance::kEuclidean), d2.clamp_min(1e-12).sqrt()));
  EXPECT_TRUE(torch::equal(eval::compute_distance(a, b, eval::Metric::kEuclidean), d2));
  eval::DistanceBlocks blocks(a, b, eval::Metric::kCosine);
  EXPECT_TRUE(torch::allclose(blocks.rows(2, 5), eval::distance_matrix(a, b, eval::Metric::kCosine).slice(0, 2, 5),
                              1e-6, 1e-6));
  // Rounding makes |a|^2 + |a|^2 - 2 a.a slightly negative for large equal rows: clamped at 0.
  const auto big = torch::full({3, 64}, 1000.0f) + torch::randn({3, 64});
  EXPECT_GE(eval::distance_matrix(big, big, eval::Metric::kEuclidean).min().item<float>(), 0.0f);
}

}  // namespace
}  // namespace reid::losses
