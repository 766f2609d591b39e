#include <gtest/gtest.h>

#include <cmath>

#include "reid/losses/triplet.h"
#include "support.h"

namespace reid::losses {
namespace {

// Four 1-D points: ids 0 at {0, 1} and ids 1 at {3, 10}.
const torch::Tensor kPoints = torch::tensor({{0.0}, {1.0}, {3.0}, {10.0}}, torch::kDouble);
const torch::Tensor kLabels = torch::tensor({0, 0, 1, 1}, torch::kLong);

TEST(Triplet, SelectsTheHardestPositiveAndNegative) {
  const auto r = batch_hard_triplet(kPoints, kLabels, TripletOptions().margin(0.3));
  // anchor 0: positive 1 (d 1), negative 2 (d 3); anchor 1: positive 0 (1), negative 2 (2);
  // anchor 2: positive 3 (7), negative 1 (2); anchor 3: positive 2 (7), negative 1 (9).
  EXPECT_TRUE(torch::equal(r.hardest_positive, torch::tensor({1, 0, 3, 2}, torch::kLong)));
  EXPECT_TRUE(torch::equal(r.hardest_negative, torch::tensor({2, 2, 1, 1}, torch::kLong)));
  // gaps d_ap - d_an: -2, -1, 5, -2 -> only anchor 2 is active: (5 + 0.3) / 4.
  EXPECT_NEAR(r.loss.item<double>(), 5.3 / 4, 1e-9);
  EXPECT_DOUBLE_EQ(r.active_fraction.item<double>(), 0.25);
  EXPECT_EQ(r.valid_anchors.item<int64_t>(), 4);
}

TEST(Triplet, SoftMarginIsSoftplusOfTheGap) {
  const auto r = batch_hard_triplet(kPoints, kLabels, TripletOptions().margin(0.0));
  auto softplus = [](double g) { return std::log1p(std::exp(g)); };
  EXPECT_NEAR(r.loss.item<double>(), (softplus(-2) + softplus(-1) + softplus(5) + softplus(-2)) / 4, 1e-9);
}

TEST(Triplet, CosineDistanceAndNormalisation) {
  // Unit vectors at 0, 10, 90 and 120 degrees; ids 0, 0, 1, 1.
  auto unit = [](double deg) { return std::vector<double>{std::cos(deg * M_PI / 180), std::sin(deg * M_PI / 180)}; };
  std::vector<double> flat;
  for (double d : {0.0, 10.0, 90.0, 120.0})
    for (double v : unit(d)) flat.push_back(v);
  const auto x = torch::tensor(flat, torch::kDouble).view({4, 2});
  const auto r = batch_hard_triplet(x * 5.0, kLabels,
                                    TripletOptions().margin(0.3).metric(Distance::kCosine));
  auto d = [](double a, double b) { return 1.0 - std::cos((a - b) * M_PI / 180); };
  // anchor 0: ap d(0,10), an d(0,90); anchor 1: ap d(10,0), an d(10,90);
  // anchor 2: ap d(90,120), an d(90,10); anchor 3: ap d(120,90), an d(120,10).
  const double gaps[] = {d(0, 10) - d(0, 90), d(10, 0) - d(10, 90), d(90, 120) - d(90, 10),
                         d(120, 90) - d(120, 10)};
  double expected = 0;
  for (double g : gaps) expected += std::max(0.0, g + 0.3);
  EXPECT_NEAR(r.loss.item<double>(), expected / 4, 1e-9);
  // Euclidean distance on L2-normalised features ignores the scale of 5.
  const auto a = batch_hard_triplet(x * 5.0, kLabels, TripletOptions().normalize(true));
  const auto b = batch_hard_triplet(x, kLabels, TripletOptions());
  EXPECT_NEAR(a.loss.item<double>(), b.loss.item<double>(), 1e-9);
}

TEST(Triplet, AnchorsWithoutPositiveOrNegativeAreLeftOut) {
  // id 2 appears once: no positive.
  const auto x = torch::tensor({{0.0}, {1.0}, {5.0}}, torch::kDouble);
  const auto r = batch_hard_triplet(x, torch::tensor({0, 0, 2}, torch::kLong), TripletOptions().margin(1.0));
  EXPECT_EQ(r.valid_anchors.item<int64_t>(), 2);
  EXPECT_EQ(r.hardest_positive[2].item<int64_t>(), -1);
  // anchors 0 and 1: d_ap 1, d_an 5 and 4 -> relu(1 - 5 + 1) = 0, relu(1 - 4 + 1) = 0.
  EXPECT_NEAR(r.loss.item<double>(), 0.0, 1e-12);
  // One identity only: no negatives anywhere; the loss is a differentiable zero.
  auto y = torch::randn({4, 3}, torch::kDouble).requires_grad_(true);
  const auto none = batch_hard_triplet(y, torch::zeros({4}, torch::kLong));
  EXPECT_EQ(none.valid_anchors.item<int64_t>(), 0);
  none.loss.backward();
  EXPECT_TRUE(y.grad().defined());
}

TEST(Triplet, WorksForAnyPxKComposition) {
  torch::manual_seed(0);
  for (auto pk : {std::make_pair(2, 2), std::make_pair(3, 5), std::make_pair(8, 4)}) {
    std::vector<int64_t> labels;
    for (int p = 0; p < pk.first; ++p)
      for (int k = 0; k < pk.second; ++k) labels.push_back(p);
    const auto r = batch_hard_triplet(torch::randn({pk.first * pk.second, 16}),
                                      torch::tensor(labels, torch::kLong));
    EXPECT_EQ(r.valid_anchors.item<int64_t>(), pk.first * pk.second);
    EXPECT_TRUE(std::isfinite(r.loss.item<double>()));
  }
}

TEST(Triplet, GradientMatchesFiniteDifferences) {
  torch::manual_seed(1);
  const auto labels = torch::tensor({0, 0, 1, 1, 2, 2}, torch::kLong);
  const auto x = torch::randn({6, 4}, torch::kDouble);
  for (auto options : {TripletOptions().margin(5.0), TripletOptions().margin(0.0),
                       TripletOptions().margin(5.0).metric(Distance::kCosine),
                       TripletOptions().margin(5.0).normalize(true)}) {
    EXPECT_LT(test::gradient_error(
                  [&](const torch::Tensor& f) { return batch_hard_triplet(f, labels, options).loss; }, x),
              1e-6);
  }
}

TEST(PairwiseDistance, EuclideanAndCosine) {
  const auto a = torch::tensor({{0.0, 0.0}, {3.0, 4.0}}, torch::kDouble);
  const auto d = pairwise_distance(a, a, Distance::kEuclidean);
  EXPECT_NEAR(d[0][1].item<double>(), 5.0, 1e-12);
  EXPECT_NEAR(d[1][1].item<double>(), 1e-6, 1e-9) << "clamped at sqrt(1e-12)";
  const auto c = pairwise_distance(torch::tensor({{1.0, 0.0}}, torch::kDouble),
                                   torch::tensor({{0.0, 2.0}, {-1.0, 0.0}}, torch::kDouble), Distance::kCosine);
  EXPECT_NEAR(c[0][0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(c[0][1].item<double>(), 2.0, 1e-12);
}

}  // namespace
}  // namespace reid::losses
