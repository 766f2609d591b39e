// The CUDA path: a training step, mixed precision against float32, checkpoint and resume, and
// feature extraction. Every test skips with a message where CUDA is not available. The
// device-independent pieces of the path (gradient clipping without a read-back, the float16
// loss scaler) are tested on the CPU too.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/app/test.h"
#include "reid/app/train.h"
#include "reid/config/loader.h"
#include "reid/config/options.h"
#include "reid/core/runtime.h"
#include "reid/engine/builders.h"
#include "reid/engine/optim.h"
#include "reid/models/weights.h"
#include "support.h"

namespace reid::engine {
namespace {

namespace fs = std::filesystem;

#define REID_REQUIRE_CUDA()                                                                      \
  do {                                                                                           \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available: skipping a GPU test"; \
  } while (0)

const char* kConfig = R"(
model: {name: osnet_x0_25}
data:
  sources: [synthetic]
  targets: [synthetic]
  height: 64
  width: 32
  synthetic: {train_ids: 8, test_ids: 4, cameras: 2, images_per_camera: 3, height: 64, width: 32}
  batch_size: 8
  workers: 2
sampler: {name: identity, num_instances: 2}
loss: {names: [ce, triplet]}
solver: {base_lr: 0.003, max_epochs: 2, milestones: [], checkpoint_period: 1, log_period: 2}
test: {batch_size: 16}
device: cuda
)";

Config config_for(const test::TempDir& dir, const std::string& name, std::vector<std::string> overrides = {}) {
  overrides.push_back("output_dir=" + (dir / name).string());
  return config::parse_config(kConfig, overrides);
}

TEST(Cuda, TrainingStepsWriteFiniteWeightsAndEvaluate) {
  REID_REQUIRE_CUDA();
  test::TempDir dir;
  const auto result = app::train(config_for(dir, "run"), false);
  EXPECT_EQ(result.epochs, 2);
  ASSERT_EQ(result.results.size(), 1u);
  EXPECT_GT(result.results.begin()->second.num_valid, 0);
  for (const auto& t : models::read_state_dict(result.final_weights)) {
    if (t.second.is_floating_point()) {
      EXPECT_TRUE(t.second.isfinite().all().item<bool>()) << t.first;
    }
  }
}

TEST(Cuda, MixedPrecisionFeaturesAgreeWithFloat32) {
  REID_REQUIRE_CUDA();
  torch::manual_seed(0);
  auto model = models::builtin_models().create("osnet_x0_25", models::ModelOptions());
  model->to(torch::kCUDA);
  model->eval();
  const auto x = torch::randn({16, 3, 128, 64}, torch::kCUDA);
  torch::NoGradGuard no_grad;
  const auto reference = model->forward(x).feature.to(torch::kFloat);
  for (const auto dtype : {torch::kBFloat16, torch::kHalf}) {
    torch::Tensor mixed;
    {
      AutocastGuard autocast(true, dtype);
      mixed = model->forward(x).feature.to(torch::kFloat);
    }
    // bfloat16 keeps 8 bits of mantissa (relative rounding 4e-3 per operation), float16 11
    // bits; through ~30 layers the test feature stays within 3% (bf16) / 1% (fp16) in norm.
    const double error = ((mixed - reference).norm() / reference.norm()).item<double>();
    EXPECT_LT(error, dtype == torch::kBFloat16 ? 3e-2 : 1e-2) << c10::toString(dtype);
    const double cosine = torch::cosine_similarity(mixed, reference, 1).min().item<double>();
    EXPECT_GT(cosine, 0.999) << c10::toString(dtype);
  }
}

TEST(Cuda, Float16TrainingWithTheLossScalerLearns) {
  REID_REQUIRE_CUDA();
  test::TempDir dir;
  const auto result = app::train(config_for(dir, "fp16", {"solver.amp=true", "solver.amp_dtype=float16"}), false);
  EXPECT_EQ(result.epochs, 2);
  EXPECT_GT(result.results.begin()->second.mAP, 0.0);
}

TEST(Cuda, ResumeGivesTheUninterruptedWeightsWithDeterministicAlgorithms) {
  REID_REQUIRE_CUDA();
  test::TempDir dir;
  const std::vector<std::string> det = {"solver.deterministic=true", "data.targets=[]"};
  app::train(config_for(dir, "whole", det), false);
  auto half = det;
  half.push_back("solver.max_epochs=1");
  app::train(config_for(dir, "resumed", half), false);
  app::train(config_for(dir, "resumed", det), true);
  const auto a = models::read_state_dict((dir / "whole/model_final.pt").string());
  const auto b = models::read_state_dict((dir / "resumed/model_final.pt").string());
  for (const auto& t : a) EXPECT_TRUE(torch::equal(t.second, b.at(t.first))) << t.first;
}

TEST(Cuda, ExtractionOnTheGpuMatchesTheCpu) {
  REID_REQUIRE_CUDA();
  test::TempDir dir;
  const Config cuda = config_for(dir, "run", {"solver.max_epochs=1", "data.targets=[]"});
  app::train(cuda, false);
  const auto records = data::make_record_list(data::load_dataset("synthetic", config::dataset_options(cuda)).query);
  const std::string weights = (dir / "run/model_final.pt").string();
  const auto on_gpu = app::extract(cuda, weights, records, (dir / "gpu").string(), "q");
  const Config cpu = config::parse_config(kConfig, {"device=cpu", "output_dir=" + (dir / "cpu").string()});
  const auto on_cpu = app::extract(cpu, weights, records, (dir / "cpu").string(), "q");
  EXPECT_TRUE(torch::allclose(on_gpu.features, on_cpu.features, 1e-3, 1e-4));
}

// ---- device-independent pieces, tested everywhere -----------------------------------------------

TEST(GradientClipping, MatchesLibTorchWithoutReadingBack) {
  torch::manual_seed(0);
  torch::nn::Linear a(8, 4), b(8, 4);
  {
    torch::NoGradGuard g;
    b->weight.copy_(a->weight);
    b->bias.copy_(a->bias);
  }
  const auto x = torch::randn({5, 8});
  (a->forward(x).pow(2).sum() * 100).backward();
  (b->forward(x).pow(2).sum() * 100).backward();
  torch::nn::utils::clip_grad_norm_(a->parameters(), 0.5);
  clip_gradients(b->parameters(), 0.5);
  EXPECT_TRUE(torch::allclose(a->weight.grad(), b->weight.grad(), 1e-6, 1e-7));
  EXPECT_TRUE(torch::allclose(a->bias.grad(), b->bias.grad(), 1e-6, 1e-7));
  // Below the limit nothing changes.
  const auto before = b->weight.grad().clone();
  clip_gradients(b->parameters(), 1e6);
  EXPECT_TRUE(torch::equal(before, b->weight.grad()));
}

TEST(LossScaler, UnscalesSkipsOverflowsAndAdaptsTheScale) {
  LossScaler scaler(1024.0, 2.0, 0.5, /*interval=*/2);
  auto w = torch::ones({3}, torch::requires_grad());
  scaler->scale((w * 3).sum()).backward();
  EXPECT_FLOAT_EQ(w.grad()[0].item<float>(), 3 * 1024.0f);
  EXPECT_TRUE(scaler->unscale({w}));
  EXPECT_FLOAT_EQ(w.grad()[0].item<float>(), 3.0f);
  scaler->update(true);
  EXPECT_EQ(scaler->current(), 1024.0);
  scaler->update(true);
  EXPECT_EQ(scaler->current(), 2048.0) << "grows after `interval` clean steps";
  w.mutable_grad().fill_(std::numeric_limits<float>::infinity());
  EXPECT_FALSE(scaler->unscale({w}));
  scaler->update(false);
  EXPECT_EQ(scaler->current(), 1024.0) << "backs off after an overflow";
  EXPECT_EQ(models::state_dict(*scaler).count("scale"), 1u) << "checkpointed as a module";
}

}  // namespace
}  // namespace reid::engine
