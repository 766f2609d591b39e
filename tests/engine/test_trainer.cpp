// End-to-end training on a tiny synthetic set: outputs, freeze-then-open, NaN handling, and
// the resume contract (kill -9 or SIGINT, then --resume, gives the uninterrupted run's weights).
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <thread>

#include <torch/torch.h>

#include "reid/app/test.h"
#include "reid/app/train.h"
#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "reid/core/runtime.h"
#include "reid/deploy/model.h"
#include "reid/engine/builders.h"
#include "reid/engine/checkpoint.h"
#include "reid/io/npy.h"
#include "reid/io/tensorboard.h"
#include "reid/models/weights.h"
#include "support.h"

namespace reid::engine {
namespace {

namespace fs = std::filesystem;

const char* const kTinyConfig = test::kTinyTrainingConfig;

std::string write_config(const test::TempDir& dir, const std::string& extra = "") {
  const auto path = dir / "tiny.yaml";
  test::write_file(path, std::string(kTinyConfig) + extra + "output_dir: " + (dir / "run").string() + "\n");
  return path.string();
}

Config load(const std::string& path, const std::vector<std::string>& overrides = {}) {
  return config::load_config(path, overrides);
}

TEST(Trainer, WritesEverythingARunNeeds) {
  test::TempDir dir;
  const Config config = load(write_config(dir));
  seed_everything(1);
  int iterations = 0, epochs = 0, evaluations = 0;
  int64_t planned = 0;
  TrainCallbacks callbacks;
  callbacks.on_iteration = [&](const IterationStats& s) {
    ++iterations;
    if (s.batch == s.batches) planned += s.batches;
    EXPECT_GT(s.images_per_second, 0);
    EXPECT_FALSE(s.terms.empty());
  };
  callbacks.on_epoch = [&](const EpochStats&) { ++epochs; };
  callbacks.on_evaluation = [&](int64_t, const std::string& name, const eval::EvalResult& r) {
    ++evaluations;
    EXPECT_EQ(name, "synthetic");
    EXPECT_GT(r.num_valid, 0);
  };
  const auto result = app::train(config, false, callbacks);
  EXPECT_EQ(result.epochs, 3);
  EXPECT_FALSE(result.interrupted);
  EXPECT_EQ(epochs, 3);
  EXPECT_EQ(evaluations, 3);
  EXPECT_EQ(iterations, planned) << "log_period 1: one line per step";
  EXPECT_GE(planned, 3 * 4);
  EXPECT_GT(result.best_epoch, 0);
  const fs::path run = config.output_dir;
  for (const char* file : {"model_final.pt", "model_best.pt", "checkpoints/last.ckpt", "metrics.csv", "metrics.jsonl",
                           "training_curve.png"})
    EXPECT_TRUE(fs::exists(run / file)) << file;
  const std::string csv = test::read_file(run / "metrics.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4) << csv;
  EXPECT_NE(csv.find("epoch,lr,loss,ce,triplet,accuracy,triplet_active"), std::string::npos) << csv;
  if (io::tensorboard_available()) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(run / "tb")) files.push_back(e.path().string());
    ASSERT_EQ(files.size(), 1u);
    const auto events = io::read_scalar_events(files[0]);
    bool has_rank1 = false, has_lr = false;
    for (const auto& e : events) {
      has_rank1 = has_rank1 || e.tag == "eval/synthetic/rank1";
      has_lr = has_lr || e.tag == "train/lr";
    }
    EXPECT_TRUE(has_rank1 && has_lr);
  }
  // The final weights are a Python-readable state dict of the whole model.
  EXPECT_TRUE(models::read_state_dict((run / "model_final.pt").string()).count("classifier.weight"));
}

// A program's own hook sees what the built-in hooks measured, at the moment they measure it:
// the logged means before the epoch's checkpoint, each evaluation with its epoch.
class ReportLog : public TrainHook {
 public:
  void iteration_logged(Trainer& trainer, const IterationStats& stats) override {
    events.push_back("iteration " + std::to_string(stats.epoch) + "." + std::to_string(stats.batch));
    EXPECT_EQ(stats.epoch, trainer.epoch() + 1);
    EXPECT_EQ(stats.batch, trainer.batch());
  }
  void epoch_logged(Trainer&, const EpochStats& stats) override {
    events.push_back("epoch " + std::to_string(stats.epoch));
    EXPECT_FALSE(stats.terms.empty());
  }
  void evaluated(Trainer&, int64_t epoch, const std::string& dataset, const eval::EvalResult& result) override {
    events.push_back("evaluated " + std::to_string(epoch) + " " + dataset);
    EXPECT_GT(result.num_valid, 0);
  }
  void after_epoch(Trainer& trainer) override { events.push_back("after_epoch " + std::to_string(trainer.epoch() + 1)); }
  std::vector<std::string> events;
};

TEST(Trainer, AProgramsHookReceivesTheMeasuredMeansAndEvaluations) {
  test::TempDir dir;
  const Config config = load(write_config(dir), {"solver.max_epochs=2", "solver.log_period=2"});
  seed_everything(1);
  app::TrainSetup setup;
  auto log = std::make_shared<ReportLog>();
  setup.hooks.push_back(log);
  int callback_epochs = 0;
  setup.callbacks.on_epoch = [&](const EpochStats&) { ++callback_epochs; };
  app::train(config, setup);
  EXPECT_EQ(callback_epochs, 2);
  std::vector<std::string> epochs;  // everything but the iterations
  int iterations = 0;
  for (const auto& e : log->events) {
    if (e.rfind("iteration ", 0) == 0) ++iterations;
    else epochs.push_back(e);
  }
  EXPECT_GT(iterations, 0);
  EXPECT_EQ(epochs, (std::vector<std::string>{"epoch 1", "evaluated 1 synthetic", "after_epoch 1", "epoch 2",
                                              "evaluated 2 synthetic", "after_epoch 2"}));
}

TEST(Trainer, FreezeThenOpenTrainsOnlyTheOpenLayers) {
  test::TempDir dir;
  const Config config = load(write_config(dir), {"solver.max_epochs=1", "solver.fixbase_epochs=1",
                                                 "solver.warmup_epochs=0", "solver.milestones=[]",
                                                 "data.targets=[]", "loss.names=[ce]"});
  seed_everything(1);
  const auto initial = deploy::build_model(config, 8, torch::kCPU);
  seed_everything(1);
  app::train(config, false);
  const auto trained = models::read_state_dict((fs::path(config.output_dir) / "model_final.pt").string());
  const auto before = models::state_dict(*initial);
  EXPECT_TRUE(torch::equal(trained.at("conv1.conv.weight"), before.at("conv1.conv.weight")));
  EXPECT_TRUE(torch::equal(trained.at("conv2.0.conv1.bn.running_mean"), before.at("conv2.0.conv1.bn.running_mean")))
      << "frozen layers keep their BN statistics";
  EXPECT_TRUE(torch::equal(trained.at("fc.0.weight"), before.at("fc.0.weight")));
  EXPECT_FALSE(torch::equal(trained.at("classifier.weight"), before.at("classifier.weight")));
  const Config bad = load(write_config(dir), {"solver.fixbase_epochs=1", "solver.open_layers=[head]",
                                              "output_dir=" + (dir / "bad").string()});
  try {
    app::train(bad, false);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "solver.open_layers");
    EXPECT_NE(std::string(e.what()).find("classifier"), std::string::npos);
  }
}

TEST(Trainer, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  test::TempDir dir;
  const std::string path = write_config(dir);
  app::train(load(path, {"solver.max_epochs=1", "solver.warmup_epochs=0", "data.targets=[]"}), false);
  const fs::path checkpoint = fs::path(dir / "run") / "checkpoints/last.ckpt";
  const std::string good = test::read_file(checkpoint);
  try {
    app::train(load(path, {"solver.max_epochs=3", "solver.base_lr=1e30", "solver.warmup_epochs=0", "data.targets=[]"}), true);
    FAIL() << "expected the loss to blow up";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("at epoch 2, batch"), std::string::npos) << message;
    EXPECT_NE(message.find(checkpoint.string()), std::string::npos) << message;
  }
  EXPECT_EQ(test::read_file(checkpoint), good) << "the checkpoint of epoch 1 is untouched";
}

TEST(Trainer, ResumeAfterKillGivesTheUninterruptedWeights) {
  test::TempDir dir;
  const std::string path = write_config(dir, "");
  const std::string reference = (dir / "reference").string();
  const std::string killed = (dir / "killed").string();
  auto run = [&](const std::string& out, bool resume) {
    std::vector<std::string> argv = {test::tool("reid-train"), "-c", path, "-o", out};
    if (resume) argv.push_back("--resume");
    return argv;
  };
  ASSERT_EQ(test::wait_exit(test::spawn(run(reference, false), dir / "reference.log")), 0)
      << test::read_file(dir / "reference.log");

  // Kill -9 as soon as the first checkpoint exists: nothing gets a chance to clean up.
  const int pid = test::spawn(run(killed, false), dir / "killed.log");
  const fs::path checkpoint = fs::path(killed) / "checkpoints/last.ckpt";
  while (!fs::exists(checkpoint)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  EXPECT_EQ(test::wait_exit(pid), 128 + SIGKILL);
  ASSERT_FALSE(fs::exists(fs::path(killed) / "model_final.pt")) << "killed before the end";
  ASSERT_EQ(test::wait_exit(test::spawn(run(killed, true), dir / "resumed.log")), 0) << test::read_file(dir / "resumed.log");
  test::expect_same_weights(reference + "/model_final.pt", killed + "/model_final.pt");
  EXPECT_NE(test::read_file(dir / "resumed.log").find("resumed from"), std::string::npos);
}

TEST(Trainer, SigintMidEpochCheckpointsAndResumesExactly) {
  test::TempDir dir;
  const std::string path = write_config(dir, "");
  const std::string reference = (dir / "reference").string(), stopped = (dir / "stopped").string();
  ASSERT_EQ(test::wait_exit(test::spawn({test::tool("reid-train"), "-c", path, "-o", reference}, dir / "a.log")), 0);
  const int pid = test::spawn({test::tool("reid-train"), "-c", path, "-o", stopped}, dir / "b.log");
  // Interrupt in the middle of epoch 2 (iteration 6 of 12).
  const fs::path metrics = fs::path(stopped) / "metrics.jsonl";
  while (true) {
    const std::string text = fs::exists(metrics) ? test::read_file(metrics) : "";
    if (text.find("\"iteration\": 6,") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGINT);
  EXPECT_EQ(test::wait_exit(pid), 130) << test::read_file(dir / "b.log");
  EXPECT_NE(test::read_file(dir / "b.log").find("interrupted at epoch"), std::string::npos);
  ASSERT_EQ(test::wait_exit(test::spawn({test::tool("reid-train"), "-c", path, "-o", stopped, "--resume"}, dir / "c.log")), 0)
      << test::read_file(dir / "c.log");
  test::expect_same_weights(reference + "/model_final.pt", stopped + "/model_final.pt");
}

TEST(Checkpoint, RoundTripsTheStateAndTheRunTotals) {
  test::TempDir dir;
  torch::manual_seed(0);
  torch::nn::Linear model(3, 2);
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(0.1));
  model->forward(torch::randn({4, 3})).sum().backward();
  optimizer.step();
  TrainingState state;
  state.epoch = 3;
  state.iteration = 30;
  state.sampler = {7, 3, 5};
  state.best_metric = 0.625;
  state.best_epoch = 2;
  state.train_seconds = 12.5;
  state.images = 960;
  state.config_yaml = "seed: 7\n";
  const std::string path = (dir / "last.ckpt").string();
  Checkpointer writer;
  writer.add("model", *model);
  writer.add("optimizer", optimizer);
  writer.save(path, state);
  torch::nn::Linear other(3, 2);
  torch::optim::Adam other_optimizer(other->parameters(), torch::optim::AdamOptions(0.1));
  Checkpointer reader;
  reader.add("model", *other);
  reader.add("optimizer", other_optimizer);
  const TrainingState back = reader.load(path);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.iteration, 30);
  EXPECT_EQ(back.sampler.seed, 7u);
  EXPECT_EQ(back.sampler.epoch, 3);
  EXPECT_EQ(back.sampler.position, 5);
  EXPECT_EQ(back.best_metric, 0.625);
  EXPECT_EQ(back.best_epoch, 2);
  EXPECT_EQ(back.train_seconds, 12.5);  // a resumed run reports the throughput of the whole run
  EXPECT_EQ(back.images, 960);
  EXPECT_EQ(back.config_yaml, "seed: 7\n");
  EXPECT_TRUE(torch::equal(other->weight, model->weight));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);  // no temporary
}

TEST(Trainer, TestAndExtractUseTheTrainedWeights) {
  test::TempDir dir;
  const std::string path = write_config(dir);
  const Config config = load(path, {"solver.max_epochs=1", "solver.warmup_epochs=0", "test.save_features=true", "test.visualize=2"});
  app::train(config, false);
  const auto results = app::test(config);
  ASSERT_EQ(results.size(), 1u);
  const fs::path run = config.output_dir;
  EXPECT_TRUE(fs::exists(run / "features/synthetic/query_features.npy"));
  const auto gallery = io::read_npy((run / "features/synthetic/gallery_features.npy").string());
  EXPECT_EQ(gallery.size(0), 4 * 2 * 2);
  EXPECT_EQ(std::distance(fs::directory_iterator(run / "ranked_lists/synthetic"), fs::directory_iterator()), 2);
  // Extract on a folder with Market-style names.
  for (int i = 0; i < 3; ++i) test::write_image(dir / "images" / ("000" + std::to_string(i) + "_c2s1_000001_00.jpg"), 64, 32, i);
  const auto r = test::run_command(test::tool("reid-extract") + " -c " + path + " --weights " + (run / "model_final.pt").string() +
                                   " --images " + (dir / "images").string() + " -o " + (dir / "extracted").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto features = io::read_npy((dir / "extracted/features_features.npy").string());
  EXPECT_EQ(features.sizes(), (std::vector<int64_t>{3, 512}));
  const auto camids = io::read_npy((dir / "extracted/features_camids.npy").string());
  EXPECT_EQ(camids[0].item<int64_t>(), 1);
  EXPECT_EQ(io::read_npy_strings((dir / "extracted/features_paths.npy").string()).size(), 3u);
  const auto missing = test::run_command(test::tool("reid-test") + " -c " + path + " -o " + (dir / "empty").string());
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("pass --weights"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace reid::engine
