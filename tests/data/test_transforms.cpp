#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/data/transforms.h"

namespace reid::data {
namespace {

cv::Mat gradient_image(int h, int w) {
  cv::Mat image(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) image.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 7 % 256, y * 3 % 256, (x + y) % 256);
  return image;
}

TransformOptions train_options() {
  TransformOptions o;
  o.height = 32;
  o.width = 16;
  o.augments = {Augment::kRandomFlip, Augment::kPadCrop, Augment::kColorJitter, Augment::kRandomErasing};
  o.pad = 3;
  o.color_jitter.prob = 1.0;
  o.color_jitter.saturation = 0.3;
  o.color_jitter.hue = 0.1;
  return o;
}

TEST(Transforms, NormalisationIsExactAndRgbOrdered) {
  cv::Mat pixel(1, 1, CV_8UC3, cv::Scalar(255, 128, 0));  // B, G, R
  float out[3];
  to_normalized_chw(pixel, out, {0.5f, 0.5f, 0.5f}, {0.25f, 0.5f, 1.0f});
  EXPECT_FLOAT_EQ(out[0], (0.0f - 0.5f) / 0.25f) << "R";
  EXPECT_FLOAT_EQ(out[1], (128.0f / 255.0f - 0.5f) / 0.5f) << "G";
  EXPECT_FLOAT_EQ(out[2], (1.0f - 0.5f) / 1.0f) << "B";
}

TEST(Transforms, ShapeRangeAndDeterminism) {
  const Transform transform(train_options());
  const cv::Mat image = gradient_image(40, 20);
  const auto a = transform(image, 42);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{3, 32, 16}));
  // Normalised values of 8-bit pixels stay within [(0 - mean) / std, (1 - mean) / std].
  EXPECT_GE(a.min().item<float>(), (0.0f - 0.485f) / 0.229f - 1e-5f);
  EXPECT_LE(a.max().item<float>(), (1.0f - 0.406f) / 0.225f + 1e-5f);
  EXPECT_TRUE(torch::equal(a, transform(image, 42))) << "same seed, same output";
  bool differs = false;
  for (uint64_t seed = 0; seed < 10 && !differs; ++seed) differs = !torch::equal(a, transform(image, seed));
  EXPECT_TRUE(differs);
  EXPECT_EQ(cv::norm(image, gradient_image(40, 20), cv::NORM_INF), 0.0) << "the input is not modified";
}

TEST(Transforms, TestPipelineIsResizeAndNormaliseOnly) {
  TransformOptions o;
  o.height = 20;
  o.width = 10;
  const cv::Mat image = gradient_image(20, 10);
  std::vector<float> expected(3 * 20 * 10);
  to_normalized_chw(image, expected.data(), o.mean, o.std);
  const auto out = Transform(o)(image, 1);
  EXPECT_TRUE(torch::equal(out, torch::from_blob(expected.data(), {3, 20, 10})));
}

TEST(Transforms, FlipMirrorsExactly) {
  Rng rng(0);
  cv::Mat image = gradient_image(4, 5);
  const cv::Mat original = image.clone();
  random_flip(image, 1.0, rng);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 5; ++x) EXPECT_EQ(image.at<cv::Vec3b>(y, x), original.at<cv::Vec3b>(y, 4 - x));
  random_flip(image, 0.0, rng);
  EXPECT_EQ(image.at<cv::Vec3b>(0, 0), original.at<cv::Vec3b>(0, 4));
}

TEST(Transforms, PadCropShiftsContentAndFillsWithZeros) {
  const cv::Mat image = gradient_image(10, 6) + cv::Scalar(1, 1, 1);  // no zero pixels
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng rng(seed);
    const cv::Mat out = pad_crop(image, 3, rng);
    ASSERT_EQ(out.size(), image.size());
    // Find the shift: some (dy, dx) in [-3, 3]^2 maps every non-zero pixel back to the image.
    bool found = false;
    for (int dy = -3; dy <= 3 && !found; ++dy)
      for (int dx = -3; dx <= 3 && !found; ++dx) {
        bool ok = true;
        for (int y = 0; y < 10 && ok; ++y)
          for (int x = 0; x < 6 && ok; ++x) {
            const int sy = y + dy, sx = x + dx;
            const bool inside = sy >= 0 && sy < 10 && sx >= 0 && sx < 6;
            const cv::Vec3b expected = inside ? image.at<cv::Vec3b>(sy, sx) : cv::Vec3b(0, 0, 0);
            ok = out.at<cv::Vec3b>(y, x) == expected;
          }
        found = ok;
      }
    EXPECT_TRUE(found) << "seed " << seed;
  }
}

TEST(Transforms, RandomErasingRespectsAreaAndAspect) {
  ErasingOptions o;
  o.prob = 1.0;
  o.value = {9.0f, 8.0f, 7.0f};
  const int h = 64, w = 32;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    std::vector<float> image(3 * h * w, 0.5f);
    Rng rng(seed);
    ASSERT_TRUE(random_erasing(image.data(), h, w, o, rng));
    int erased = 0, rows = 0, cols = 0;
    for (int y = 0; y < h; ++y) {
      int in_row = 0;
      for (int x = 0; x < w; ++x)
        if (image[y * w + x] == 9.0f) {
          ++erased;
          ++in_row;
          EXPECT_EQ(image[h * w + y * w + x], 8.0f);
          EXPECT_EQ(image[2 * h * w + y * w + x], 7.0f);
        }
      if (in_row) {
        ++rows;
        cols = in_row;
      }
    }
    EXPECT_EQ(erased, rows * cols) << "one rectangle";
    EXPECT_GE(erased, 0.02 * h * w * 0.8);
    EXPECT_LE(erased, 0.4 * h * w * 1.2);
  }
  std::vector<float> image(3 * h * w, 0.5f);
  Rng rng(0);
  o.prob = 0.0;
  EXPECT_FALSE(random_erasing(image.data(), h, w, o, rng));
}

TEST(Transforms, ColorJitterKeepsTheImageValid) {
  ColorJitterOptions o;
  o.prob = 1.0;
  o.brightness = 0.5;
  o.contrast = 0.5;
  o.saturation = 0.5;
  o.hue = 0.2;
  cv::Mat image = gradient_image(16, 8);
  const cv::Mat original = image.clone();
  Rng rng(3);
  color_jitter(image, o, rng);
  EXPECT_EQ(image.size(), original.size());
  EXPECT_EQ(image.type(), CV_8UC3);
  EXPECT_GT(cv::norm(image, original, cv::NORM_L1), 0.0);
  // Brightness only, factor drawn from [0.5, 1.5]: every pixel scales by the same factor.
  ColorJitterOptions brightness;
  brightness.prob = 1.0;
  brightness.brightness = 0.5;
  brightness.contrast = 0.0;
  cv::Mat flat(2, 2, CV_8UC3, cv::Scalar(100, 100, 100));
  Rng rng2(5);
  color_jitter(flat, brightness, rng2);
  const int v = flat.at<cv::Vec3b>(0, 0)[0];
  EXPECT_GE(v, 50);
  EXPECT_LE(v, 150);
  EXPECT_EQ(flat.at<cv::Vec3b>(1, 1)[2], v);
}

TEST(Transforms, ErasingMustComeLastAndNamesAreChecked) {
  TransformOptions o;
  o.augments = {Augment::kRandomErasing, Augment::kRandomFlip};
  EXPECT_THROW(Transform{o}, c10::Error);
  EXPECT_EQ(parse_augment("pad_crop"), Augment::kPadCrop);
  EXPECT_THROW(parse_augment("random_crop"), Error);
}

}  // namespace
}  // namespace reid::data
