#pragma once
// Models and inputs shared by the deploy tests.
#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "reid/data/image_io.h"
#include "reid/data/synthetic.h"
#include "reid/data/transforms.h"
#include "reid/models/model.h"
#include "support.h"

namespace reid::deploy::test_fixtures {

// A registry model with random weights and random batch-norm statistics (so that folding and
// every normalisation matter), in eval mode.
// `height` x `width` is the input size it is built for (what a ViT's position embeddings need).
inline models::ReidModel random_model(const std::string& name, models::Neck neck = models::Neck::kNone,
                               models::Pooling pooling = models::Pooling::kAvg, int64_t height = 256,
                               int64_t width = 128) {
  torch::manual_seed(11);
  auto model = models::builtin_models().create(
      name, models::ModelOptions().height(height).width(width).head(
                models::HeadOptions().num_classes(9).neck(neck).pooling(pooling)));
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) item.value().normal_(0.0, 0.2);
    if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 1.5);
  }
  for (auto& item : model->named_parameters()) {
    const auto& key = item.key();
    if (item.value().dim() == 1 && key.find("bias") != std::string::npos) item.value().normal_(0.0, 0.1);
    if (item.value().dim() == 1 && key.find("weight") != std::string::npos) item.value().uniform_(0.5, 1.5);
    // A non-local block's attention is cubic in its input's scale, which random statistics blow
    // up to infinity in an untrained network: its output scale stays 0 (as initialised) here;
    // test_export.cpp's NonLocal test checks it with realistic statistics.
    if (key.find("NL_") != std::string::npos && key.find("W.1.weight") != std::string::npos) item.value().zero_();
  }
  model->eval();
  return model;
}

// Crops as a detector gives them: real Market-1501 crops when REID_DATA_ROOT is set, synthetic
// pedestrians otherwise (8-bit BGR).
inline std::vector<cv::Mat> crop_images(int64_t n) {
  std::vector<cv::Mat> images;
  const auto root = test::data_root();
  if (!root.empty()) {
    std::vector<std::string> files;
    for (const auto& entry : test::fs::directory_iterator(test::fs::path(root) / "market1501" / "Market-1501-v15.09.15" / "bounding_box_test"))
      if (entry.path().extension() == ".jpg") files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());
    for (int64_t i = 0; i < n && i < static_cast<int64_t>(files.size()); ++i)
      images.push_back(data::read_image(files[static_cast<std::size_t>(i * 37 % files.size())]));
  }
  for (int64_t i = static_cast<int64_t>(images.size()); i < n; ++i)
    images.push_back(data::render_synthetic({3, 128, 64, i % 5, i % 3, i}));
  return images;
}

// `images` resized and normalised as at test time, [n, 3, height, width].
inline torch::Tensor test_batch(const std::vector<cv::Mat>& images, int height = 256, int width = 128) {
  data::TransformOptions options;
  options.height = height;
  options.width = width;
  const data::Transform transform(options);
  std::vector<torch::Tensor> batch;
  for (const auto& image : images) batch.push_back(transform(image, 0));
  return torch::stack(batch);
}

// n crops (crop_images) resized and normalised as at test time.
inline torch::Tensor crops(int64_t n, int height = 256, int width = 128) {
  return test_batch(crop_images(n), height, width);
}

inline double relative_error(const torch::Tensor& got, const torch::Tensor& expected) {
  return ((got - expected).abs().max() / expected.abs().max()).item<double>();
}

inline void write_raw(const std::string& path, const torch::Tensor& t) {
  const auto c = t.contiguous().to(torch::kFloat);
  std::ofstream(path, std::ios::binary).write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
}

inline torch::Tensor read_raw(const std::string& path, std::vector<int64_t> shape) {
  auto t = torch::empty(shape);
  std::ifstream in(path, std::ios::binary);
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  EXPECT_EQ(in.gcount(), static_cast<std::streamsize>(t.nbytes())) << path;
  return t;
}

}  // namespace reid::deploy::test_fixtures
