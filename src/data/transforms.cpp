#include "reid/data/transforms.h"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/random.h"

namespace reid::data {
namespace {

double uniform(Rng& rng, double lo, double hi) { return utils::uniform_real(rng, lo, hi); }

}  // namespace

const Registry<Augment()>& augment_registry() {
  static const Registry<Augment()> registry = [] {
    Registry<Augment()> r("augmentation");
    r.add("random_flip", [] { return Augment::kRandomFlip; });
    r.add("pad_crop", [] { return Augment::kPadCrop; });
    r.add("color_jitter", [] { return Augment::kColorJitter; });
    r.add("random_erasing", [] { return Augment::kRandomErasing; });
    return r;
  }();
  return registry;
}

Augment parse_augment(const std::string& name) { return augment_registry().create(name); }

cv::Mat resize_image(const cv::Mat& image, int height, int width) {
  if (image.rows == height && image.cols == width) return image;
  cv::Mat out;
  cv::resize(image, out, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  return out;
}

void random_flip(cv::Mat& image, double prob, Rng& rng) {
  if (uniform(rng, 0.0, 1.0) < prob) {
    cv::Mat flipped;
    cv::flip(image, flipped, 1);
    image = flipped;
  }
}

cv::Mat pad_crop(const cv::Mat& image, int pad, Rng& rng) {
  if (pad <= 0) return image;
  const int h = image.rows, w = image.cols;
  // Window origin in padded coordinates, then the part of the original it covers.
  const int oy = static_cast<int>(utils::uniform_int(rng, 0, 2 * pad)) - pad;
  const int ox = static_cast<int>(utils::uniform_int(rng, 0, 2 * pad)) - pad;
  cv::Mat out = cv::Mat::zeros(h, w, image.type());
  const cv::Rect source = cv::Rect(ox, oy, w, h) & cv::Rect(0, 0, w, h);
  if (!source.empty()) image(source).copyTo(out(cv::Rect(source.x - ox, source.y - oy, source.width, source.height)));
  return out;
}

void color_jitter(cv::Mat& image, const ColorJitterOptions& o, Rng& rng) {
  if (uniform(rng, 0.0, 1.0) >= o.prob) return;
  // Draw every factor first so the random stream does not depend on which ones are active.
  const double b = uniform(rng, std::max(0.0, 1.0 - o.brightness), 1.0 + o.brightness);
  const double c = uniform(rng, std::max(0.0, 1.0 - o.contrast), 1.0 + o.contrast);
  const double s = uniform(rng, std::max(0.0, 1.0 - o.saturation), 1.0 + o.saturation);
  const double hue = uniform(rng, -o.hue, o.hue);
  if (o.brightness > 0) image.convertTo(image, -1, b, 0.0);
  if (o.contrast > 0) {
    cv::Mat gray;
    cv::cvtColor(image, gray, cv::COLOR_BGR2GRAY);
    const double mean = cv::mean(gray)[0];
    image.convertTo(image, -1, c, (1.0 - c) * mean);
  }
  if (o.saturation > 0) {
    cv::Mat gray, gray3;
    cv::cvtColor(image, gray, cv::COLOR_BGR2GRAY);
    cv::cvtColor(gray, gray3, cv::COLOR_GRAY2BGR);
    cv::addWeighted(image, s, gray3, 1.0 - s, 0.0, image);
  }
  if (o.hue > 0) {
    cv::Mat hsv;
    cv::cvtColor(image, hsv, cv::COLOR_BGR2HSV);
    const int shift = static_cast<int>(std::lround(hue * 180.0));
    for (int y = 0; y < hsv.rows; ++y) {
      auto* row = hsv.ptr<cv::Vec3b>(y);
      for (int x = 0; x < hsv.cols; ++x) row[x][0] = static_cast<uchar>(((row[x][0] + shift) % 180 + 180) % 180);
    }
    cv::cvtColor(hsv, image, cv::COLOR_HSV2BGR);
  }
}

void to_normalized_chw(const cv::Mat& bgr, float* out, const std::array<float, 3>& mean,
                       const std::array<float, 3>& std) {
  TORCH_CHECK(bgr.type() == CV_8UC3, "expected an 8-bit 3-channel image");
  const int h = bgr.rows, w = bgr.cols;
  const std::size_t plane = static_cast<std::size_t>(h) * w;
  float scale[3], bias[3];
  for (int c = 0; c < 3; ++c) {
    scale[c] = 1.0f / (255.0f * std[c]);
    bias[c] = -mean[c] / std[c];
  }
  for (int y = 0; y < h; ++y) {
    const uchar* row = bgr.ptr<uchar>(y);
    float* r = out + static_cast<std::size_t>(y) * w;
    float* g = r + plane;
    float* b = g + plane;
    for (int x = 0; x < w; ++x) {
      b[x] = row[3 * x] * scale[2] + bias[2];
      g[x] = row[3 * x + 1] * scale[1] + bias[1];
      r[x] = row[3 * x + 2] * scale[0] + bias[0];
    }
  }
}

bool random_erasing(float* chw, int height, int width, const ErasingOptions& o, Rng& rng) {
  if (uniform(rng, 0.0, 1.0) >= o.prob) return false;
  const double area = static_cast<double>(height) * width;
  for (int attempt = 0; attempt < o.attempts; ++attempt) {
    const double target = uniform(rng, o.min_area, o.max_area) * area;
    const double aspect = uniform(rng, o.min_aspect, 1.0 / o.min_aspect);
    const int h = static_cast<int>(std::lround(std::sqrt(target * aspect)));
    const int w = static_cast<int>(std::lround(std::sqrt(target / aspect)));
    if (w < width && h < height && w > 0 && h > 0) {
      const int y0 = static_cast<int>(utils::uniform_int(rng, 0, height - h));
      const int x0 = static_cast<int>(utils::uniform_int(rng, 0, width - w));
      for (int c = 0; c < 3; ++c)
        for (int y = y0; y < y0 + h; ++y)
          std::fill_n(chw + (static_cast<std::size_t>(c) * height + y) * width + x0, w, o.value[c]);
      return true;
    }
  }
  return false;
}

Transform::Transform(TransformOptions options) : options_(std::move(options)) {
  TORCH_CHECK(options_.height > 0 && options_.width > 0, "transform size must be positive");
  for (std::size_t i = 0; i < options_.augments.size(); ++i)
    TORCH_CHECK(options_.augments[i] != Augment::kRandomErasing || i + 1 == options_.augments.size(),
                "random_erasing acts on the normalised tensor and must be the last augmentation");
}

void Transform::apply(const cv::Mat& bgr, float* out, Rng& rng) const {
  cv::Mat image = resize_image(bgr, options_.height, options_.width);
  bool erase = false;
  for (const Augment augment : options_.augments) {
    switch (augment) {
      case Augment::kRandomFlip: random_flip(image, options_.flip_prob, rng); break;
      case Augment::kPadCrop: image = pad_crop(image, options_.pad, rng); break;
      case Augment::kColorJitter:
        if (image.data == bgr.data) image = image.clone();  // never modify the caller's image
        color_jitter(image, options_.color_jitter, rng);
        break;
      case Augment::kRandomErasing: erase = true; break;
    }
  }
  to_normalized_chw(image, out, options_.mean, options_.std);
  if (erase) random_erasing(out, options_.height, options_.width, options_.erasing, rng);
}

torch::Tensor Transform::operator()(const cv::Mat& bgr, uint64_t seed) const {
  auto out = torch::empty({3, options_.height, options_.width});
  Rng rng(seed);
  apply(bgr, out.data_ptr<float>(), rng);
  return out;
}

}  // namespace reid::data
