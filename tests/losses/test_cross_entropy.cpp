#include <gtest/gtest.h>

#include <cmath>

#include "reid/losses/cross_entropy.h"
#include "support.h"

namespace reid::losses {
namespace {

TEST(CrossEntropy, HandComputedWithAndWithoutSmoothing) {
  // logits (2, 0, 0), target 0: log p = (2 - L, -L, -L) with L = log(e^2 + 2).
  const double L = std::log(std::exp(2.0) + 2.0);
  const auto logits = torch::tensor({{2.0, 0.0, 0.0}}, torch::kDouble);
  const auto target = torch::tensor({0}, torch::kLong);
  EXPECT_NEAR(cross_entropy_label_smooth(logits, target, 0.0).item<double>(), L - 2.0, 1e-12);
  // epsilon 0.1: q = (0.9 + 0.1/3, 0.1/3, 0.1/3).
  const double expected = -(0.9 + 0.1 / 3) * (2.0 - L) - 2 * (0.1 / 3) * (-L);
  EXPECT_NEAR(cross_entropy_label_smooth(logits, target, 0.1).item<double>(), expected, 1e-12);
}

TEST(CrossEntropy, AveragesOverTheBatch) {
  const auto logits = torch::tensor({{1.0, 0.0}, {0.0, 3.0}}, torch::kDouble);
  const auto targets = torch::tensor({1, 1}, torch::kLong);
  const double first = std::log(std::exp(1.0) + 1.0) - 0.0;
  const double second = std::log(1.0 + std::exp(3.0)) - 3.0;
  EXPECT_NEAR(cross_entropy_label_smooth(logits, targets, 0.0).item<double>(), (first + second) / 2, 1e-12);
}

TEST(CrossEntropy, GradientMatchesFiniteDifferences) {
  torch::manual_seed(0);
  const auto targets = torch::tensor({2, 0, 1, 2}, torch::kLong);
  EXPECT_LT(test::gradient_error(
                [&](const torch::Tensor& x) { return cross_entropy_label_smooth(x, targets, 0.1); },
                torch::randn({4, 3})),
            1e-7);
}

TEST(CrossEntropy, RejectsBadInput) {
  const auto logits = torch::zeros({2, 3});
  EXPECT_THROW(cross_entropy_label_smooth(logits, torch::tensor({0, 3}, torch::kLong)), c10::Error);
  EXPECT_THROW(cross_entropy_label_smooth(logits, torch::tensor({0}, torch::kLong)), c10::Error);
  EXPECT_THROW(cross_entropy_label_smooth(logits, torch::tensor({0, 1}, torch::kLong), 1.0), c10::Error);
}

TEST(Accuracy, CountsArgmaxHits) {
  EXPECT_DOUBLE_EQ(accuracy(torch::tensor({{1.0, 2.0}, {3.0, 0.0}, {0.0, 1.0}}),
                            torch::tensor({1, 1, 1}, torch::kLong))
                       .item<double>(),
                   2.0 / 3.0);
}

}  // namespace
}  // namespace reid::losses
