// The embedding API: crops in memory -> L2-normalised features, equal to what evaluation
// extracts; built from a run folder, a config + weights, or a model; reid-export.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "reid/deploy/embedder.h"
#include "reid/models/temporal.h"
#include "reid/models/weights.h"
#include "deploy/fixtures.h"
#include "support.h"

namespace reid::deploy {
namespace {

using namespace test_fixtures;

// What evaluation computes for the same crops: the test transform, the eager model, the
// optional flip average, then L2 normalisation.
torch::Tensor reference(models::ReidModelImpl& model, const std::vector<cv::Mat>& images, int h, int w, bool flip) {
  const auto x = test_batch(images, h, w);
  torch::NoGradGuard no_grad;
  auto f = model.forward(x).feature;
  if (flip) f = (f + model.forward(x.flip({3})).feature) / 2.0;
  return f / f.norm(2, 1, true);
}

TEST(Embedder, FeaturesEqualTheEvaluationPathForCropsOfAnySize) {
  auto model = random_model("osnet_x0_25");
  auto images = crop_images(5);
  // Detector boxes come in all sizes.
  cv::resize(images[1], images[1], cv::Size(37, 90));
  cv::resize(images[2], images[2], cv::Size(200, 410));
  const auto expected = reference(*model, images, 256, 128, false);
  for (const bool fold : {false, true}) {
    for (const bool channels_last : {false, true}) {
      EmbedderOptions options;
      options.fold_batchnorm = fold;
      options.channels_last = channels_last;
      options.batch_size = 2;  // 5 crops: three batches
      const Embedder embedder(*model, data::TransformOptions(), options);
      const auto features = embedder.embed(images);
      ASSERT_EQ(features.sizes(), expected.sizes());
      EXPECT_LT((features - expected).abs().max().item<double>(), 1e-5) << "fold " << fold << " cl " << channels_last;
      EXPECT_NEAR(features[3].norm().item<double>(), 1.0, 1e-6);
      EXPECT_TRUE(embedder.embed(images[4]).allclose(features[4], 1e-5, 1e-6));
    }
  }
}

// A single crop runs through XNNPACK's convolutions on the CPU (where LibTorch has XNNPACK), a
// pass of several through oneDNN's: every kind of network gives the same feature both ways.
TEST(Embedder, ASingleCropGivesTheFeatureOfThePassOfSeveral) {
  const auto images = crop_images(3);
  data::TransformOptions small;
  small.height = 128;
  small.width = 64;
  for (const std::string name : {"osnet_x0_25", "osnet_ibn_x1_0", "resnet50", "mgn_resnet50", "resnet50_nl"}) {
    auto model = random_model(name, models::Neck::kBNNeck, models::Pooling::kAvg);
    const Embedder embedder(*model, small);
    const auto several = embedder.embed(images);
    for (std::size_t i = 0; i < images.size(); ++i) {
      const auto one = embedder.embed(images[i]);
      EXPECT_LT((one - several[static_cast<int64_t>(i)]).abs().max().item<double>(), 1e-5) << name << " crop " << i;
    }
    EXPECT_TRUE(embedder.single_crop_xnnpack()) << "this LibTorch (PyPI's x86-64 build) has XNNPACK";
    EmbedderOptions plain;
    plain.xnnpack_single_crop = false;
    const Embedder onednn(*model, small, plain);
    EXPECT_FALSE(onednn.single_crop_xnnpack());
    EXPECT_LT((onednn.embed(images[0]) - several[0]).abs().max().item<double>(), 1e-5) << name;
  }
}

TEST(Embedder, ChoosesSmallerPassesForWiderNetworks) {
  const Embedder narrow(*random_model("osnet_x0_25"), data::TransformOptions());
  const Embedder wide(*random_model("osnet_x1_0"), data::TransformOptions());
  // Largest activation per image: 16 x 128 x 64 and 64 x 128 x 64 floats (0.5 and 2 MiB).
  EXPECT_EQ(narrow.batch_size(), 8);
  EXPECT_EQ(wide.batch_size(), 4);
  EmbedderOptions options;
  options.batch_size = 5;
  EXPECT_EQ(Embedder(*random_model("osnet_x0_25"), data::TransformOptions(), options).batch_size(), 5);
  options.batch_size = -1;
  EXPECT_THROW(Embedder(*random_model("osnet_x0_25"), data::TransformOptions(), options), Error);
}

TEST(Embedder, FlipAveragingAndUnnormalisedFeatures) {
  auto model = random_model("resnet50", models::Neck::kBNNeck);
  const auto images = crop_images(3);
  EmbedderOptions options;
  options.flip = true;
  const Embedder flipped(*model, data::TransformOptions(), options);
  EXPECT_LT((flipped.embed(images) - reference(*model, images, 256, 128, true)).abs().max().item<double>(), 1e-5);
  options.flip = false;
  options.normalize = false;
  const Embedder raw(*model, data::TransformOptions(), options);
  torch::NoGradGuard no_grad;
  const auto eager = model->forward(raw.preprocess(images)).feature;
  EXPECT_LT(relative_error(raw.embed(images), eager), 1e-5);
}

TEST(Embedder, TrackletFeatureIsTheClipModelsFeatureOfAllItsFrames) {
  // A clip model with temporal average pooling and a BN neck whose statistics are not trivial.
  torch::manual_seed(5);
  models::ModelOptions options;
  options.height(128).width(64).head(models::HeadOptions().num_classes(7).neck(models::Neck::kBNNeck));
  auto clip_model = models::make_temporal_model("osnet_x0_25", options, models::TemporalPooling::kAvg);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : clip_model->named_buffers()) {
      if (item.key().find("running_mean") != std::string::npos) item.value().normal_(0.0, 0.2);
      if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 1.5);
    }
  }
  clip_model->eval();
  const auto frames = crop_images(5);
  data::TransformOptions transform;
  transform.height = 128;
  transform.width = 64;
  const Embedder embedder(*clip_model, transform);
  const auto got = embedder.embed_tracklet(frames);
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = clip_model->forward(test_batch(frames, 128, 64).unsqueeze(0)).feature[0];
  }
  expected = expected / expected.norm();
  EXPECT_LT(relative_error(got, expected), 1e-4);
  // Several tracklets at once, of different lengths.
  const std::vector<cv::Mat> short_one(frames.begin(), frames.begin() + 2);
  const auto both = embedder.embed_tracklets({short_one, frames});
  ASSERT_EQ(both.sizes(), (std::vector<int64_t>{2, embedder.feature_dim()}));
  EXPECT_LT(relative_error(both[1], expected), 1e-4);
  EXPECT_LT(relative_error(both[0], embedder.embed_tracklet(short_one)), 1e-5);
  EXPECT_THROW(embedder.embed_tracklet({}), Error);
  // Attention pooling is not a mean of frames: refused with the way out.
  auto attention = models::make_temporal_model("osnet_x0_25", options, models::TemporalPooling::kAttention);
  attention->eval();
  const Embedder refused(*attention, transform);
  try {
    refused.embed_tracklet(frames);
    FAIL() << "attention pooling embedded as a mean";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("extract_features"), std::string::npos) << e.what();
  }
}

TEST(Embedder, GreyAndBgraCropsAreConvertedAndBadCropsNamed) {
  auto model = random_model("osnet_x0_25");
  const Embedder embedder(*model, data::TransformOptions());
  const auto bgr = crop_images(1)[0];
  cv::Mat grey, bgra, grey_bgr;
  cv::cvtColor(bgr, grey, cv::COLOR_BGR2GRAY);
  cv::cvtColor(grey, grey_bgr, cv::COLOR_GRAY2BGR);
  cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
  EXPECT_TRUE(embedder.embed(grey).allclose(embedder.embed(grey_bgr), 1e-5, 1e-6));
  EXPECT_TRUE(embedder.embed(bgra).allclose(embedder.embed(bgr), 1e-5, 1e-6));
  EXPECT_EQ(embedder.embed(std::vector<cv::Mat>{}).sizes(), (std::vector<int64_t>{0, 512}));
  for (const cv::Mat& bad : {cv::Mat(), cv::Mat(cv::Mat::zeros(20, 10, CV_32FC3)), cv::Mat(cv::Mat::zeros(20, 10, CV_8UC2))}) {
    try {
      embedder.embed(std::vector<cv::Mat>{bgr, bad});
      FAIL() << "a bad crop was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("crop 1"), std::string::npos) << e.what();
    }
  }
  EmbedderOptions half;
  half.dtype = torch::kHalf;
  EXPECT_THROW(Embedder(*model, data::TransformOptions(), half), Error);  // half precision needs CUDA
}

constexpr const char* kRunConfig = R"(model: {name: osnet_x0_25}
data: {sources: [synthetic], targets: [synthetic], height: 128, width: 64}
)";

TEST(Embedder, FromARunFolderOrAConfigAndWeights) {
  test::TempDir dir;
  auto model = random_model("osnet_x0_25");
  const auto run = dir / "run";
  test::write_file(run / "config.yaml", kRunConfig);
  try {
    Embedder::from_run(run.string());
    FAIL() << "a run without weights was accepted";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find(run.string()), std::string::npos) << e.what();
  }
  models::save_weights(*model, (run / "model_final.pt").string());
  const auto images = crop_images(4);
  const auto expected = reference(*model, images, 128, 64, false);
  const auto from_run = Embedder::from_run(run.string());
  EXPECT_EQ(from_run.transform().height, 128);
  EXPECT_LT((from_run.embed(images) - expected).abs().max().item<double>(), 1e-5);
  const Embedder from_config(config::load_config((run / "config.yaml").string()), (run / "model_final.pt").string());
  EXPECT_LT((from_config.embed(images) - expected).abs().max().item<double>(), 1e-5);
  EXPECT_THROW(Embedder::from_run((dir / "missing").string()), IOError);
}

TEST(Embedder, HalfPrecisionOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto model = random_model("osnet_x0_25");
  const auto images = crop_images(4);
  const auto expected = reference(*model, images, 256, 128, false);
  for (const auto dtype : {torch::kFloat, torch::kHalf, torch::kBFloat16}) {
    EmbedderOptions options;
    options.device = torch::kCUDA;
    options.dtype = dtype;
    const Embedder embedder(*model, data::TransformOptions(), options);
    const double tolerance = dtype == torch::kFloat ? 1e-4 : dtype == torch::kHalf ? 1e-2 : 5e-2;
    EXPECT_LT((embedder.embed(images) - expected).abs().max().item<double>(), tolerance) << dtype;
  }
}

TEST(ReidExport, WritesOnnxAndTorchScriptWithThePreprocessing) {
  test::TempDir dir;
  auto model = random_model("osnet_x0_25");
  test::write_file(dir / "config.yaml", kRunConfig);
  models::save_weights(*model, (dir / "w.pt").string());
  const auto r = test::run_command(test::tool("reid-export") + " -c " + (dir / "config.yaml").string() + " -o " +
                                   (dir / "out").string() + " --weights " + (dir / "w.pt").string() + " --onnx " +
                                   (dir / "m.onnx").string() + " --torchscript " + (dir / "m.pt").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("[N, 3, 128, 64] -> features [N, 512]"), std::string::npos) << r.out;
  const auto onnx = test::read_file(dir / "m.onnx");
  EXPECT_NE(onnx.find("reid.mean"), std::string::npos);
  EXPECT_NE(onnx.find("0.485,0.456,0.406"), std::string::npos);
  torch::jit::ExtraFilesMap extra{{"metadata/reid.height", ""}};
  auto loaded = torch::jit::load((dir / "m.pt").string(), torch::kCPU, extra);
  EXPECT_EQ(extra["metadata/reid.height"], "128");
  const auto images = crops(2, 128, 64);
  torch::NoGradGuard no_grad;
  EXPECT_LT(relative_error(loaded.forward({images}).toTensor(), model->forward(images).feature), 1e-5);
  // Usage errors: nothing to write; weights that do not fit the model.
  const auto nothing = test::run_command(test::tool("reid-export") + " -c " + (dir / "config.yaml").string() +
                                         " --weights " + (dir / "w.pt").string());
  EXPECT_EQ(nothing.exit_code, 2) << nothing.err;
  models::save_weights(*random_model("osnet_x0_5"), (dir / "other.pt").string());
  const auto mismatch = test::run_command(test::tool("reid-export") + " -c " + (dir / "config.yaml").string() + " -o " +
                                          (dir / "out").string() + " --weights " + (dir / "other.pt").string() +
                                          " --onnx " + (dir / "x.onnx").string());
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_NE(mismatch.err.find("other.pt"), std::string::npos) << mismatch.err;
  EXPECT_FALSE(test::fs::exists(dir / "x.onnx"));
}

}  // namespace
}  // namespace reid::deploy
