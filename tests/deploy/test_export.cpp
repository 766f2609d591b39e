// Tracing, batch-norm folding, TorchScript and ONNX export. The ONNX files are run by a real
// runtime: onnxruntime's CPU build (npm package onnxruntime-node, installed by scripts/setup.sh)
// and OpenCV's DNN module.
#include <gtest/gtest.h>

#include <fstream>

#if REID_HAVE_OPENCV_DNN
#include <opencv2/dnn.hpp>
#endif
#include <torch/script.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/data/image_io.h"
#include "reid/data/synthetic.h"
#include "reid/data/transforms.h"
#include "reid/deploy/onnx.h"
#include "reid/deploy/trace.h"
#include "reid/models/model.h"
#include "support.h"

namespace reid::deploy {
namespace {

using test::TempDir;

// A registry model with random weights and random batch-norm statistics (so that folding and
// every normalisation matter), in eval mode.
models::ReidModel random_model(const std::string& name, models::Neck neck = models::Neck::kNone,
                               models::Pooling pooling = models::Pooling::kAvg) {
  torch::manual_seed(11);
  auto model = models::builtin_models().create(
      name, models::ModelOptions().head(models::HeadOptions().num_classes(9).neck(neck).pooling(pooling)));
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) item.value().normal_(0.0, 0.2);
    if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 1.5);
  }
  for (auto& item : model->named_parameters()) {
    const auto& key = item.key();
    if (item.value().dim() == 1 && key.find("bias") != std::string::npos) item.value().normal_(0.0, 0.1);
    if (item.value().dim() == 1 && key.find("weight") != std::string::npos) item.value().uniform_(0.5, 1.5);
  }
  model->eval();
  return model;
}

// Test-time inputs: real Market-1501 crops when REID_DATA_ROOT is set, synthetic pedestrians
// otherwise; resized and normalised as at test time.
torch::Tensor crops(int64_t n, int height = 256, int width = 128) {
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
  data::TransformOptions options;
  options.height = height;
  options.width = width;
  const data::Transform transform(options);
  std::vector<torch::Tensor> batch;
  for (const auto& image : images) batch.push_back(transform(image, 0));
  return torch::stack(batch);
}

double relative_error(const torch::Tensor& got, const torch::Tensor& expected) {
  return ((got - expected).abs().max() / expected.abs().max()).item<double>();
}

void write_raw(const std::string& path, const torch::Tensor& t) {
  const auto c = t.contiguous().to(torch::kFloat);
  std::ofstream(path, std::ios::binary).write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
}

torch::Tensor read_raw(const std::string& path, std::vector<int64_t> shape) {
  auto t = torch::empty(shape);
  std::ifstream in(path, std::ios::binary);
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  EXPECT_EQ(in.gcount(), static_cast<std::streamsize>(t.nbytes())) << path;
  return t;
}

// onnxruntime-node as scripts/setup.sh installs it (build/onnxruntime/node_modules).
std::string ort_modules() {
  const auto dir = test::fs::path(REID_BINARY_DIR) / "onnxruntime" / "node_modules";
  return test::fs::exists(dir / "onnxruntime-node") ? dir.string() : std::string();
}

// Features of `images` computed by onnxruntime from the ONNX file.
torch::Tensor run_onnxruntime(const TempDir& dir, const std::string& model, const torch::Tensor& images,
                              int64_t feature_dim) {
  write_raw((dir / "in.f32").string(), images);
  std::string shape;
  for (const auto s : images.sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(s);
  const auto result = test::run_command("NODE_PATH=" + ort_modules() + " node " +
                                        (test::source_dir() / "scripts" / "ort_run.js").string() + " --model " +
                                        model + " --input " + (dir / "in.f32").string() + " --shape " + shape +
                                        " --output " + (dir / "out.f32").string() + " --threads 2");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return read_raw((dir / "out.f32").string(), {images.size(0), feature_dim});
}

struct Case {
  std::string model;
  models::Neck neck;
  models::Pooling pooling;
};

class OnnxParity : public ::testing::TestWithParam<Case> {};

TEST_P(OnnxParity, OnnxruntimeAndOpenCvMatchTheModelOnTestCrops) {
  if (ort_modules().empty())
    GTEST_SKIP() << "onnxruntime-node is not installed in " << REID_BINARY_DIR
                 << "/onnxruntime (scripts/setup.sh installs it; needs npm)";
  const auto& c = GetParam();
  auto model = random_model(c.model, c.neck, c.pooling);
  const auto images = crops(6);
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model->forward(images).feature;
  }
  const auto traced = trace_model(*model);
  TempDir dir;
  const auto path = (dir / "model.onnx").string();
  OnnxOptions options;
  options.metadata["mean"] = "0.485,0.456,0.406";
  export_onnx(traced, path, options);

  const auto ort = run_onnxruntime(dir, path, images, model->feature_dim());
  EXPECT_LT(relative_error(ort, expected), 1e-4) << c.model;

#if REID_HAVE_OPENCV_DNN
  // OpenCV's DNN module reads the same file and runs it, one image at a time: its Scale layer
  // (what a Mul of two computed tensors becomes, OSNet's channel gate) broadcasts a [N, C, 1, 1]
  // gate only when N is 1.
  auto net = cv::dnn::readNetFromONNX(path);
  for (int64_t i = 0; i < images.size(0); ++i) {
    std::vector<int> dims = {1, 3, 256, 128};
    cv::Mat blob(dims, CV_32F, images[i].contiguous().data_ptr<float>());
    net.setInput(blob);
    cv::Mat out = net.forward().clone();
    ASSERT_EQ(out.total(), static_cast<std::size_t>(expected.size(1)));
    const auto opencv = torch::from_blob(out.ptr<float>(), {expected.size(1)}).clone();
    EXPECT_LT(relative_error(opencv, expected[i]), 1e-4) << c.model << " image " << i;
  }
#endif
}

INSTANTIATE_TEST_SUITE_P(Models, OnnxParity,
                         ::testing::Values(Case{"osnet_x0_25", models::Neck::kNone, models::Pooling::kAvg},
                                           Case{"osnet_ibn_x1_0", models::Neck::kNone, models::Pooling::kAvg},
                                           Case{"resnet50", models::Neck::kBNNeck, models::Pooling::kAvg}),
                         [](const auto& info) { return info.param.model; });

}  // namespace
}  // namespace reid::deploy
