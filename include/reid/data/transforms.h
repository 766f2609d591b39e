#pragma once
/// @file
/// Image transforms (OpenCV): resize (bilinear), random horizontal flip, zero-pad + random crop,
/// colour jitter, normalisation to a CHW float tensor, and random erasing (Zhong et al., AAAI
/// 2020) with BoT's parameters. Every random choice comes from the generator passed in, so a
/// pipeline run with the same seed gives the same output, whatever thread runs it.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/types.h>

#include "reid/core/registry.h"
#include "reid/utils/random.h"

namespace reid::data {

/// The generator every transform draws from.
using Rng = utils::Rng;

/// Training augmentations, applied in the configured order after the resize.
enum class Augment { kRandomFlip, kPadCrop, kColorJitter, kRandomErasing };

/// The augmentations by name: random_flip, pad_crop, color_jitter, random_erasing.
const Registry<Augment()>& augment_registry();

/// Parses random_flip / pad_crop / color_jitter / random_erasing; throws reid::Error otherwise.
Augment parse_augment(const std::string& name);

/// Colour jitter (torchvision's ColorJitter factors, applied brightness -> contrast ->
/// saturation -> hue).
struct ColorJitterOptions {
  double prob = 0.5;
  double brightness = 0.2;
  double contrast = 0.15;
  double saturation = 0.0;
  double hue = 0.0;
};

/// Random erasing of one rectangle (BoT: p 0.5, area 0.02-0.4 of the image, aspect >= 0.3).
struct ErasingOptions {
  double prob = 0.5;
  double min_area = 0.02;
  double max_area = 0.4;
  double min_aspect = 0.3;
  /// Per-channel (RGB) value written into the normalised tensor.
  std::array<float, 3> value{{0.485f, 0.456f, 0.406f}};
  /// Tries at drawing a rectangle that fits before giving up.
  int attempts = 100;
};

/// A whole pipeline.
struct TransformOptions {
  int height = 256;
  int width = 128;
  /// Training augmentations in order; empty for testing (resize + normalise only).
  std::vector<Augment> augments;
  double flip_prob = 0.5;
  int pad = 10;
  ColorJitterOptions color_jitter;
  ErasingOptions erasing;
  std::array<float, 3> mean{{0.485f, 0.456f, 0.406f}};
  std::array<float, 3> std{{0.229f, 0.224f, 0.225f}};
};

/// decode -> resize -> augmentations -> normalised RGB CHW floats.
class Transform {
 public:
  explicit Transform(TransformOptions options = {});
  /// Transforms an 8-bit BGR image (as decoded) into `out`, 3 x height x width floats.
  void apply(const cv::Mat& bgr, float* out, Rng& rng) const;
  /// apply() into a new [3, height, width] tensor, the generator seeded with `seed`.
  torch::Tensor operator()(const cv::Mat& bgr, uint64_t seed = 0) const;
  const TransformOptions& options() const { return options_; }

 private:
  TransformOptions options_;
};

/// Bilinear resize to height x width (no copy when the size already matches).
cv::Mat resize_image(const cv::Mat& image, int height, int width);

/// Mirrors `image` left-right with probability `prob`.
void random_flip(cv::Mat& image, double prob, Rng& rng);

/// Zero-pads `image` by `pad` pixels on every side and crops a random window of the original size.
cv::Mat pad_crop(const cv::Mat& image, int pad, Rng& rng);

/// Random brightness, contrast, saturation and hue changes (with probability options.prob).
void color_jitter(cv::Mat& image, const ColorJitterOptions& options, Rng& rng);

/// 8-bit BGR HxWx3 -> RGB CHW floats, (x / 255 - mean) / std.
void to_normalized_chw(const cv::Mat& bgr, float* out, const std::array<float, 3>& mean,
                       const std::array<float, 3>& std);

/// Erases one random rectangle of a CHW float image (with probability options.prob).
/// Returns true when a rectangle was erased.
bool random_erasing(float* chw, int height, int width, const ErasingOptions& options, Rng& rng);

}  // namespace reid::data
