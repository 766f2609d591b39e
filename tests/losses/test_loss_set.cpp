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

}  // namespace
}  // namespace reid::losses
