#include <gtest/gtest.h>

#include "reid/core/error.h"
#include "reid/losses/cross_entropy.h"
#include "reid/losses/loss_set.h"

namespace reid::losses {
namespace {

models::ReidOutput fake_output() {
  models::ReidOutput out;
  out.embeddings = {{"global", torch::tensor({{0.0}, {1.0}, {3.0}, {10.0}}, torch::kDouble)}};
  out.class_logits = {{"global", torch::tensor({{2.0, 0.0}, {0.0, 1.0}, {1.0, 1.0}, {0.0, 3.0}}, torch::kDouble)}};
  return out;
}

TEST(LossSet, WeightedSumOfNamedTerms) {
  const auto targets = torch::tensor({0, 0, 1, 1}, torch::kLong);
  LossSet set(LossSetOptions().names({"ce", "triplet"}).ce_weight(0.5).ce_epsilon(0.0).triplet_weight(2.0));
  const auto out = fake_output();
  const auto r = set->forward(out, targets);
  ASSERT_EQ(r.terms.size(), 2u);
  EXPECT_EQ(r.terms[0].first, "ce");
  EXPECT_EQ(r.terms[1].first, "triplet");
  const double ce = cross_entropy_label_smooth(out.logits(), targets, 0.0).item<double>();
  EXPECT_NEAR(r.terms[0].second.item<double>(), ce, 1e-12);
  EXPECT_NEAR(r.terms[1].second.item<double>(), 5.3 / 4, 1e-9);
  EXPECT_NEAR(r.total.item<double>(), 0.5 * ce + 2.0 * 5.3 / 4, 1e-9);
  ASSERT_EQ(r.stats.size(), 2u);
  EXPECT_EQ(r.stats[0].first, "accuracy");
  EXPECT_DOUBLE_EQ(r.stats[0].second.item<double>(), 0.5);  // rows 0 and 3 are right; row 2 ties -> class 0
  EXPECT_EQ(r.stats[1].first, "triplet_active");
  EXPECT_DOUBLE_EQ(r.stats[1].second.item<double>(), 0.25);
}

TEST(LossSet, CenterTermOwnsItsCentres) {
  LossSet set(LossSetOptions().names({"center"}).num_classes(2).feature_dim(1).center_weight(0.5));
  ASSERT_TRUE(set->center());
  {
    torch::NoGradGuard g;
    set->center()->centers.copy_(torch::tensor({{0.0f}, {2.0f}}));
  }
  auto out = fake_output();
  out.embeddings[0].second = out.embeddings[0].second.to(torch::kFloat);
  const auto r = set->forward(out, torch::tensor({0, 0, 1, 1}, torch::kLong));
  // (0 + 1 + 1 + 64) / 4 = 16.5, weighted 0.5.
  EXPECT_NEAR(r.terms[0].second.item<double>(), 16.5, 1e-5);
  EXPECT_NEAR(r.total.item<double>(), 8.25, 1e-5);
  EXPECT_EQ(set->parameters().size(), 1u);
}

TEST(LossSet, RejectsUnknownTermsAndMissingLogits) {
  EXPECT_THROW(LossSet(LossSetOptions().names({"arcface"})), Error);
  LossSet set(LossSetOptions().names({"ce"}));
  auto out = fake_output();
  out.class_logits.clear();
  EXPECT_THROW(set->forward(out, torch::tensor({0, 0, 1, 1}, torch::kLong)), c10::Error);
}

TEST(LossSet, StepsItsTermsOwnOptimisersWithTheirGradientScale) {
  EXPECT_TRUE(LossSet(LossSetOptions().names({"ce", "triplet"}))->auxiliary_optimizers().empty());
  // BoT's recipe: the centres' SGD at lr 0.5 with the gradient rescaled by 1 / weight.
  LossSet set(LossSetOptions().names({"ce", "center"}).num_classes(2).feature_dim(1).center_weight(0.25).center_lr(0.5));
  const auto optimizers = set->auxiliary_optimizers();
  ASSERT_EQ(optimizers.size(), 1u);
  EXPECT_EQ(optimizers[0].first, "center_optimizer");
  {
    torch::NoGradGuard g;
    set->center()->centers.copy_(torch::tensor({{0.0f}, {2.0f}}));
  }
  auto out = fake_output();
  out.embeddings[0].second = out.embeddings[0].second.to(torch::kFloat);
  out.class_logits[0].second = out.class_logits[0].second.to(torch::kFloat);
  const auto targets = torch::tensor({0, 0, 1, 1}, torch::kLong);
  for (int step = 0; step < 2; ++step) {  // the second step finds the first's gradient cleared
    set->zero_auxiliary_grad();
    const auto before = set->center()->centers.detach().clone();
    set->forward(out, targets).total.backward();
    // d/dc of 0.25 * sum_i |x_i - c_y|^2 / 4 is 0.25 * sum_i 2 (c_y - x_i) / 4.
    const auto grad = set->center()->centers.grad().clone();
    EXPECT_NEAR(grad[0].item<float>(), 0.25 * 2 * ((before[0].item<float>() - 0) + (before[0].item<float>() - 1)) / 4,
                1e-6);
    set->step_auxiliary();
    // Rescaled by 1 / 0.25, then one SGD step of 0.5.
    EXPECT_TRUE(torch::allclose(set->center()->centers.detach(), before - 0.5 * 4.0 * grad, 1e-6, 1e-6));
  }
}

TEST(LossSet, ATermWarnsAboutAnEpochUnderItsOwnName) {
  LossSet set(LossSetOptions().names({"ce", "triplet"}).triplet(TripletOptions().margin(0.3)));
  const auto warnings = set->epoch_warnings({{"ce", 5.9}, {"triplet", 0.3001}, {"accuracy", 0.0}, {"triplet_active", 1.0}});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].first, "triplet");
  EXPECT_NE(warnings[0].second.find("collapsed to a single point"), std::string::npos) << warnings[0].second;
  EXPECT_NE(warnings[0].second.find("0.3000"), std::string::npos) << warnings[0].second;
  EXPECT_TRUE(set->epoch_warnings({{"ce", 5.9}, {"triplet", 0.25}, {"triplet_active", 1.0}}).empty()) << "learning";
  EXPECT_TRUE(set->epoch_warnings({{"ce", 5.9}, {"triplet", 0.3}, {"triplet_active", 0.8}}).empty());
  // The soft margin has no margin to sit at; terms without a diagnosis say nothing.
  LossSet soft(LossSetOptions().names({"triplet"}).triplet(TripletOptions().margin(0.0)));
  EXPECT_TRUE(soft->epoch_warnings({{"triplet", 0.0}, {"triplet_active", 1.0}}).empty());
  LossSet ce(LossSetOptions().names({"ce"}));
  EXPECT_TRUE(ce->epoch_warnings({{"ce", 0.3}, {"triplet_active", 1.0}}).empty());
}

}  // namespace
}  // namespace reid::losses
