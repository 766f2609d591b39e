// Multi-branch models through the whole training path: MGN (3 triplet embeddings, 8
// classifiers) with ce + triplet + center, interrupted and resumed bit-identically, and AGW
// (non-local ResNet, GeM, BNNeck, ce + wrt); both with models registered by the program.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/app/test.h"
#include "reid/app/train.h"
#include "reid/config/loader.h"
#include "reid/engine/checkpoint.h"
#include "reid/models/mgn.h"
#include "reid/models/resnet.h"
#include "reid/models/weights.h"
#include "support.h"

namespace reid::engine {
namespace {

// ResNet-50-shaped networks with one block per stage (two in layer3): the real code, quick.
Registries tiny_registries() {
  Registries r;
  r.models.add("mgn_tiny", [](const models::ModelOptions& o) -> models::ReidModel {
    return std::make_shared<models::MGNImpl>(models::MGNOptions().layers({1, 1, 2, 1}).head(o.head()), "mgn_tiny");
  });
  r.models.add("agw_tiny", [](const models::ModelOptions& o) -> models::ReidModel {
    return std::make_shared<models::ResNetImpl>(
        models::ResNetOptions().layers({1, 1, 2, 1}).non_local({0, 1, 1, 0}).head(o.head()), "agw_tiny");
  });
  return r;
}

Config tiny_config(const test::TempDir& dir, const std::string& out, const std::vector<std::string>& overrides) {
  const auto path = dir / "tiny.yaml";
  test::write_file(path, R"(
data:
  sources: [synthetic]
  targets: [synthetic]
  height: 64
  width: 32
  synthetic: {train_ids: 8, test_ids: 4, cameras: 2, images_per_camera: 2, height: 64, width: 32}
  transforms: [random_flip]
  batch_size: 8
  workers: 2
sampler: {name: identity, num_instances: 2}
solver: {optimizer: sgd, base_lr: 0.01, max_epochs: 2, milestones: [1], warmup_epochs: 0, eval_period: 2, checkpoint_period: 0, log_period: 1}
test: {batch_size: 16, metric: cosine}
)");
  auto all = overrides;
  all.push_back("output_dir=" + (dir / out).string());
  return config::load_config(path.string(), all);
}

TEST(MultiBranch, MgnTrainsWithItsLossSetAndResumesBitIdentically) {
  test::TempDir dir;
  const std::vector<std::string> mgn = {"model.name=mgn_tiny", "model.pooling=max", "loss.names=[ce, triplet, center]"};
  app::TrainSetup setup;
  setup.registries = tiny_registries();
  const auto reference = app::train(tiny_config(dir, "reference", mgn), setup);
  EXPECT_FALSE(reference.interrupted);
  ASSERT_EQ(reference.results.count("synthetic"), 1u);

  // Stop after the second step (mid-epoch), then resume: the same weights as the uninterrupted run.
  app::TrainSetup stopping = setup;
  std::vector<std::pair<std::string, double>> terms;
  stopping.callbacks.on_iteration = [&](const IterationStats& s) {
    terms = s.terms;
    if (s.iteration == 1) request_stop();
  };
  const auto stopped = app::train(tiny_config(dir, "resumed", mgn), stopping);
  clear_stop_request();
  ASSERT_TRUE(stopped.interrupted);
  std::vector<std::string> names;
  for (const auto& t : terms) names.push_back(t.first);
  EXPECT_EQ(names, (std::vector<std::string>{"ce", "triplet", "center", "accuracy", "triplet_active"}));
  // The center loss's centres and its own optimiser are in the checkpoint under generic names.
  const auto checkpoint = test::read_file(dir / "resumed/checkpoints/last.ckpt");
  EXPECT_NE(checkpoint.find("center_optimizer"), std::string::npos);

  setup.resume = true;
  const auto resumed = app::train(tiny_config(dir, "resumed", mgn), setup);
  EXPECT_FALSE(resumed.interrupted);
  test::expect_same_weights((dir / "reference/model_final.pt").string(), (dir / "resumed/model_final.pt").string());

  // Test and extract run on the multi-branch model: 2048-d features.
  auto config = tiny_config(dir, "reference", mgn);
  config.test.weights = (dir / "reference/model_final.pt").string();
  const auto results = app::test(config, setup.registries);
  ASSERT_EQ(results.count("synthetic"), 1u);
  EXPECT_GT(results.at("synthetic").mAP, 0.0);
}

TEST(MultiBranch, AgwTrainsWithWrtAndGemAndBnneck) {
  test::TempDir dir;
  app::TrainSetup setup;
  setup.registries = tiny_registries();
  std::vector<std::pair<std::string, double>> terms;
  setup.callbacks.on_iteration = [&](const IterationStats& s) { terms = s.terms; };
  const auto result = app::train(tiny_config(dir, "agw", {"model.name=agw_tiny", "model.pooling=gem", "model.neck=bnneck",
                                                     "loss.names=[ce, wrt]"}),
                            setup);
  ASSERT_EQ(result.results.count("synthetic"), 1u);
  ASSERT_FALSE(terms.empty());
  EXPECT_EQ(terms[1].first, "wrt");
  EXPECT_TRUE(std::isfinite(terms[1].second));
}

TEST(MultiBranch, UnknownLossNameIsAConfigErrorBeforeAnythingIsWritten) {
  test::TempDir dir;
  app::TrainSetup setup;
  try {
    app::train(tiny_config(dir, "bad", {"loss.names=[ce, tripplet]"}), setup);
    FAIL() << "an unknown loss was accepted";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("loss.names[1]"), std::string::npos) << what;
    EXPECT_NE(what.find("did you mean 'triplet'"), std::string::npos) << what;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "bad"));
}

}  // namespace
}  // namespace reid::engine
