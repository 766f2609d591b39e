// Tracing, batch-norm folding, TorchScript and ONNX export. The ONNX files are run by real
// runtimes: onnxruntime's CPU build (PyPI's onnxruntime in the environment scripts/setup.sh
// makes, through scripts/ort_run.py) and OpenCV's DNN module.
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
#include "reid/models/resnet.h"
#include "reid/models/weights.h"
#include "deploy/fixtures.h"
#include "support.h"

namespace reid::deploy {
namespace {

using test::TempDir;
using namespace test_fixtures;

// Features of `images` computed by onnxruntime from the ONNX file.
torch::Tensor run_onnxruntime(const TempDir& dir, const std::string& model, const torch::Tensor& images,
                              int64_t feature_dim) {
  write_raw((dir / "in.f32").string(), images);
  std::string shape;
  for (const auto s : images.sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(s);
  const auto result = test::run_command(test::python() + " " + (test::source_dir() / "scripts" / "ort_run.py").string() +
                                        " --model " + model + " --input " + (dir / "in.f32").string() + " --shape " +
                                        shape + " --output " + (dir / "out.f32").string() + " --threads 2");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return read_raw((dir / "out.f32").string(), {images.size(0), feature_dim});
}

struct Case {
  std::string model;
  models::Neck neck;
  models::Pooling pooling;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.model; }

class OnnxParity : public ::testing::TestWithParam<Case> {};

TEST_P(OnnxParity, OnnxruntimeAndOpenCvMatchTheModelOnTestCrops) {
  REID_REQUIRE_PYTHON();
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

// AGW's non-local blocks (matmul, permute, reshape) with realistic statistics: batch norms
// that have seen data, and attention switched on (output scale 1, not the initial 0).
TEST(OnnxNonLocal, AttentionMatchesLibReIDInOnnxruntime) {
  REID_REQUIRE_PYTHON();
  torch::manual_seed(12);
  auto model = std::make_shared<models::ResNetImpl>(
      models::ResNetOptions().layers({1, 1, 2, 1}).non_local({0, 1, 1, 0}).head(
          models::HeadOptions().pooling(models::Pooling::kGeM).neck(models::Neck::kBNNeck)));
  const auto images = crops(3, 128, 64);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters())
      if (p.key().find("W.1.weight") != std::string::npos) p.value().fill_(1.0);
    model->train();
    for (int i = 0; i < 20; ++i) model->forward(images);
  }
  model->eval();
  TempDir dir;
  TraceOptions options;
  options.height = 128;
  options.width = 64;
  const auto path = (dir / "agw.onnx").string();
  export_onnx(trace_model(*model, options), path);
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model->forward(images).feature;
  }
  // The attention changes the feature: the test would notice a block the export dropped.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters())
      if (p.key().find("W.1.weight") != std::string::npos) p.value().zero_();
    const auto without = model->forward(images).feature;
    for (auto& p : model->named_parameters())
      if (p.key().find("W.1.weight") != std::string::npos) p.value().fill_(1.0);
    ASSERT_GT(relative_error(without, expected), 1e-3);
  }
  const auto ort = run_onnxruntime(dir, path, images, model->feature_dim());
  EXPECT_LT(relative_error(ort, expected), 1e-4);
}

// Every registered network with every pooling and neck exports and runs in onnxruntime (at
// 128x64 to keep it quick): nothing in the exporter is written per architecture.
TEST(OnnxRegistry, EveryRegisteredModelAndHeadRunsInOnnxruntime) {
  REID_REQUIRE_PYTHON();
  const auto images = crops(2, 128, 64);
  TempDir dir;
  for (const auto& name : models::builtin_models().names()) {
    for (const auto pooling : {models::Pooling::kAvg, models::Pooling::kMax, models::Pooling::kGeM}) {
      const auto neck = pooling == models::Pooling::kAvg ? models::Neck::kNone : models::Neck::kBNNeck;
      // A ViT's feature is its class token: pooling is the identity (GeM is refused), so one
      // pooling with each neck covers it.
      const bool transformer = name.rfind("vit_", 0) == 0;
      if (transformer && pooling == models::Pooling::kGeM) continue;
      auto model = random_model(name, neck, pooling, 128, 64);
      TraceOptions options;
      options.height = 128;
      options.width = 64;
      const auto path = (dir / (name + ".onnx")).string();
      export_onnx(trace_model(*model, options), path);
      torch::Tensor expected;
      {
        torch::NoGradGuard no_grad;
        expected = model->forward(images).feature;
      }
      const auto ort = run_onnxruntime(dir, path, images, model->feature_dim());
      EXPECT_LT(relative_error(ort, expected), 1e-4) << name << " pooling " << static_cast<int>(pooling);
    }
  }
}

// TransReID (SIE + JPM) exports camera-agnostic: the traced model takes images only, so it adds
// the mean camera embedding, and its feature is the global one with the 4 locals / 4.
TEST(OnnxRegistry, TransReIDWithSieAndJpmRunsInOnnxruntimeCameraAgnostic) {
  REID_REQUIRE_PYTHON();
  torch::manual_seed(5);
  auto model = models::builtin_models().create(
      "vit_small_patch16", models::ModelOptions().height(128).width(64).patch_stride(12).cameras(3).jpm(true).head(
                               models::HeadOptions().num_classes(9).neck(models::Neck::kBNNeck)));
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_buffers()) {
      if (item.key().find("running_mean") != std::string::npos) item.value().normal_(0.0, 0.2);
      if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 1.5);
    }
  }
  model->eval();
  const auto images = crops(3, 128, 64);
  TempDir dir;
  TraceOptions options;
  options.height = 128;
  options.width = 64;
  const auto path = (dir / "transreid.onnx").string();
  export_onnx(trace_model(*model, options), path);
  torch::Tensor expected, with_cameras;
  {
    torch::NoGradGuard no_grad;
    expected = model->forward(images).feature;
    with_cameras = model->forward(images, {}, torch::tensor({0, 1, 2})).feature;
  }
  ASSERT_EQ(expected.size(1), 5 * 384);
  ASSERT_GT(relative_error(with_cameras, expected), 1e-4) << "the camera embedding must change the feature";
  const auto ort = run_onnxruntime(dir, path, images, model->feature_dim());
  EXPECT_LT(relative_error(ort, expected), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Models, OnnxParity,
                         ::testing::Values(Case{"osnet_x0_25", models::Neck::kNone, models::Pooling::kAvg},
                                           Case{"osnet_ibn_x1_0", models::Neck::kNone, models::Pooling::kAvg},
                                           Case{"resnet50", models::Neck::kBNNeck, models::Pooling::kAvg}),
                         [](const auto& info) { return info.param.model; });


// A small network whose featuremaps() is given, to exercise what tracing and export refuse.
class ProbeNetImpl : public models::ReidModelImpl {
 public:
  explicit ProbeNetImpl(std::function<torch::Tensor(const torch::Tensor&)> body)
      : models::ReidModelImpl("ProbeNet"), body_(std::move(body)) {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).stride(4)));
    head_.build(*this, 8, models::HeadOptions());
  }
  torch::Tensor featuremaps(const torch::Tensor& images) override { return body_(conv->forward(images)); }
  torch::nn::Conv2d conv{nullptr};

 private:
  std::function<torch::Tensor(const torch::Tensor&)> body_;
};
TORCH_MODULE(ProbeNet);

int64_t count_nodes(const TracedModel& traced, const std::string& kind) {
  int64_t n = 0;
  for (const auto* node : traced.graph->nodes()) n += std::string(node->kind().toQualString()) == kind;
  return n;
}

TEST(Trace, FoldsBatchNormsAndMatchesTheModelAtAnyBatchSize) {
  for (const char* name : {"osnet_x0_25", "resnet50_ibn_a"}) {
    auto model = random_model(name, models::Neck::kBNNeck, models::Pooling::kGeM);
    const auto before = models::state_dict(*model);
    std::vector<bool> requires_grad;
    for (const auto& p : model->parameters()) requires_grad.push_back(p.requires_grad());
    TraceOptions unfolded_options;
    unfolded_options.fold_batchnorm = false;
    const auto unfolded = trace_model(*model, unfolded_options);
    const auto folded = trace_model(*model);
    // Every batch norm after a convolution is gone; the BNNeck (after pooling) and IBN-a's
    // (after a split) remain.
    EXPECT_GT(count_nodes(unfolded, "aten::batch_norm"), count_nodes(folded, "aten::batch_norm") + 10) << name;
    for (const auto* node : folded.graph->nodes()) {
      if (node->kind() == torch::jit::aten::batch_norm) {
        EXPECT_NE(node->input(0)->node()->kind(), torch::jit::aten::_convolution) << name;
      }
    }
    const auto images = crops(5, 128, 64);
    torch::Tensor expected;
    {
      torch::NoGradGuard no_grad;
      expected = model->forward(images).feature;
    }
    auto u = unfolded.module;
    auto f = folded.module;
    EXPECT_LT(relative_error(u.forward({images}).toTensor(), expected), 1e-6) << name;
    EXPECT_LT(relative_error(f.forward({images}).toTensor(), expected), 1e-5) << name;
    // The model itself is untouched (same tensors, same values, gradients still on).
    for (const auto& [key, value] : models::state_dict(*model)) EXPECT_TRUE(value.equal(before.at(key))) << key;
    std::size_t i = 0;
    for (const auto& p : model->parameters()) EXPECT_EQ(p.requires_grad(), requires_grad[i++]);
  }
}

TEST(Trace, RefusesAForwardPassThatFreezesTheBatchSize) {
  // x.size(0) is a plain integer to the tracer: the view below would be recorded with the
  // example's batch size.
  ProbeNet frozen([](const torch::Tensor& x) { return x.reshape({x.size(0), -1, 1, 1}); });
  try {
    trace_model(*frozen, TraceOptions{});
    FAIL() << "a batch-dependent trace was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch size"), std::string::npos) << e.what();
  }
}

TEST(Onnx, AnUnsupportedOpIsNamed) {
  ProbeNet cosine([](const torch::Tensor& x) { return torch::cos(x); });
  const auto traced = trace_model(*cosine, TraceOptions{});
  try {
    to_onnx(traced);
    FAIL() << "aten::cos was exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("aten::cos"), std::string::npos) << e.what();
  }
  // A model built from supported ops exports with no new code.
  ProbeNet plain([](const torch::Tensor& x) { return torch::sigmoid(x) * x + x.clamp_min(0.5); });
  EXPECT_GT(to_onnx(trace_model(*plain, TraceOptions{})).size(), 1000u);
}

TEST(Onnx, RefusesAHalfPrecisionOrNonCpuTrace) {
  auto model = random_model("osnet_x0_25");
  auto traced = trace_model(*model, TraceOptions{});
  for (auto* n : traced.graph->nodes())
    if (n->kind() == torch::jit::prim::Constant && n->output()->type()->kind() == c10::TypeKind::TensorType) {
      n->t_(torch::jit::attr::value, n->t(torch::jit::attr::value).to(torch::kDouble));
      break;
    }
  EXPECT_THROW(to_onnx(traced), Error);
  auto plain = trace_model(*model, TraceOptions{});
  OnnxOptions options;
  options.opset = 18;  // the Reduce ops' axes became inputs there
  EXPECT_THROW(to_onnx(plain, options), Error);
  options.opset = 17;
  EXPECT_NO_THROW(to_onnx(plain, options));
}

TEST(TorchScript, LibTorchAndPythonLoadAndRunTheFile) {
  auto model = random_model("osnet_ibn_x1_0", models::Neck::kBNNeck);
  const auto traced = trace_model(*model);
  TempDir dir;
  const auto path = (dir / "model.pt").string();
  save_torchscript(traced, path, {{"reid.mean", "0.485,0.456,0.406"}});
  const auto images = crops(3);
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = model->forward(images).feature;
  }
  torch::jit::ExtraFilesMap extra{{"metadata/reid.mean", ""}};
  auto loaded = torch::jit::load(path, torch::kCPU, extra);
  EXPECT_EQ(extra["metadata/reid.mean"], "0.485,0.456,0.406");
  torch::NoGradGuard no_grad;
  EXPECT_LT(relative_error(loaded.forward({images}).toTensor(), expected), 1e-5);

  if (std::string(REID_PYTHON).empty()) GTEST_SKIP() << "no Python with torch (Debian python3-torch) found at configure time";
  write_raw((dir / "in.f32").string(), images);
  test::write_file(dir / "run.py", "import sys, numpy as np, torch\n"
                                   "m = torch.jit.load(sys.argv[1])\n"
                                   "x = torch.from_numpy(np.fromfile(sys.argv[2], dtype=np.float32).reshape(3, 3, 256, 128))\n"
                                   "with torch.no_grad(): y = m(x)\n"
                                   "y.numpy().astype(np.float32).tofile(sys.argv[3])\n");
  const auto result = test::run_command(std::string(REID_PYTHON) + " " + (dir / "run.py").string() + " " + path + " " +
                                        (dir / "in.f32").string() + " " + (dir / "out.f32").string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_LT(relative_error(read_raw((dir / "out.f32").string(), {3, expected.size(1)}), expected), 1e-5);
}

}  // namespace
}  // namespace reid::deploy
