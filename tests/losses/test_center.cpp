#include <gtest/gtest.h>

#include "reid/losses/center.h"
#include "support.h"

namespace reid::losses {
namespace {

TEST(CenterLoss, MeanSquaredDistanceToTheOwnCentre) {
  CenterLoss loss(2, 2);
  {
    torch::NoGradGuard g;
    loss->centers.copy_(torch::tensor({{0.0f, 0.0f}, {1.0f, 1.0f}}));
  }
  const auto x = torch::tensor({{3.0f, 4.0f}, {1.0f, 2.0f}, {0.0f, 0.0f}});
  const auto y = torch::tensor({0, 1, 0}, torch::kLong);
  // |(3,4)|^2 = 25, |(0,1)|^2 = 1, 0 clamped to 1e-12 -> mean 26 / 3.
  EXPECT_NEAR(loss->forward(x, y).item<float>(), 26.0f / 3.0f, 1e-5);
}

TEST(CenterLoss, GradientsForFeaturesAndCentres) {
  torch::manual_seed(0);
  CenterLoss loss(3, 4);
  loss->to(torch::kDouble);
  const auto y = torch::tensor({0, 2, 2, 1}, torch::kLong);
  EXPECT_LT(test::gradient_error([&](const torch::Tensor& x) { return loss->forward(x, y); },
                                 torch::randn({4, 4})),
            1e-7);
  // d/dc_k = -2 sum_{i: y_i = k} (x_i - c_k) / N.
  const auto x = torch::randn({4, 4}, torch::kDouble);
  loss->zero_grad();
  loss->forward(x, y).backward();
  const auto expected = -2.0 * (x[1] + x[2] - 2 * loss->centers[2]).detach() / 4.0;
  EXPECT_TRUE(torch::allclose(loss->centers.grad()[2], expected, 1e-9, 1e-12));
}

}  // namespace
}  // namespace reid::losses
