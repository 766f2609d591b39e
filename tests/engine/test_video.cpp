// The video path end to end: clips from the loader (which frames, one augmentation per clip),
// dense extraction (every frame, clip features averaged), a synthetic video run that learns, the
// trained clip model back through reid-test, and SIGINT in the middle of a video epoch resumed
// bit for bit.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <thread>

#include <torch/torch.h>

#include "reid/app/test.h"
#include "reid/app/train.h"
#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "reid/data/image_io.h"
#include "reid/data/loader.h"
#include "reid/data/synthetic.h"
#include "reid/data/tracklets.h"
#include "reid/deploy/extract.h"
#include "reid/deploy/model.h"
#include "reid/engine/builders.h"
#include "reid/models/temporal.h"
#include "reid/models/weights.h"
#include "support.h"

namespace reid::engine {
namespace {

namespace fs = std::filesystem;

// One tracklet of `frames` synthetic frames of identity `pid` in camera `camera`.
data::ImageRecord tracklet(int64_t pid, int64_t camera, int64_t frames, int64_t first = 0) {
  std::vector<std::string> paths;
  for (int64_t j = 0; j < frames; ++j) paths.push_back(data::synthetic_path({0, 64, 32, pid, camera, first + j}));
  return {paths.front(), pid, camera, std::make_shared<const std::vector<std::string>>(paths)};
}

data::TransformOptions plain_transform() {
  data::TransformOptions t;
  t.height = 32;
  t.width = 16;
  return t;
}

std::vector<data::Batch> load_all(data::DataLoader& loader, const std::vector<std::vector<int64_t>>& batches,
                                  uint64_t seed) {
  loader.start(batches, seed);
  std::vector<data::Batch> out;
  while (auto batch = loader.next()) out.push_back(std::move(*batch));
  return out;
}

TEST(VideoLoader, ClipsHoldTheSampledFrames) {
  const auto records = data::make_record_list({tracklet(1, 0, 7), tracklet(2, 1, 2)});
  const data::Transform transform(plain_transform());
  data::LoaderOptions options;
  options.seq_len = 3;
  options.sampling = data::FrameSampling::kEvenly;
  data::DataLoader loader(records, transform, options);
  const auto batches = load_all(loader, {{0, 1}}, 5);
  ASSERT_EQ(batches.size(), 1u);
  const auto& clips = batches[0].images;
  ASSERT_EQ(clips.sizes(), (std::vector<int64_t>{2, 3, 3, 32, 16}));
  EXPECT_EQ(batches[0].pids[1].item<int64_t>(), 2);
  // evenly, 7 frames, 3 per clip: cut to 6, every second frame: 0, 2, 4. Two frames: 0, 1, 1.
  const auto frame = [&](int64_t record, int64_t f) {
    return transform(data::read_image((*(*records)[static_cast<std::size_t>(record)].frames)[static_cast<std::size_t>(f)]));
  };
  EXPECT_TRUE(torch::equal(clips[0][0], frame(0, 0)));
  EXPECT_TRUE(torch::equal(clips[0][1], frame(0, 2)));
  EXPECT_TRUE(torch::equal(clips[0][2], frame(0, 4)));
  EXPECT_TRUE(torch::equal(clips[1][1], frame(1, 1)));
  EXPECT_TRUE(torch::equal(clips[1][2], frame(1, 1)));
  // Images and tracklets in one batch are an error naming the record.
  auto mixed = *records;
  mixed.push_back({data::synthetic_path({0, 64, 32, 3, 0, 0}), 3, 0});
  data::DataLoader mixed_loader(data::make_record_list(mixed), transform, options);
  try {
    load_all(mixed_loader, {{0, 2}}, 0);
    FAIL() << "mixed batch accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mixes tracklets and images"), std::string::npos) << e.what();
  }
}

TEST(VideoLoader, OneAugmentationPerClipAndTheSameClipsWithAnyWorkerCount) {
  // A tracklet of one frame repeated: with one draw per clip, every augmented frame is equal.
  const auto still = data::synthetic_path({0, 64, 32, 4, 1, 0});
  const data::ImageRecord repeated{still, 4, 1, std::make_shared<const std::vector<std::string>>(4, still)};
  auto t = plain_transform();
  t.augments = {data::Augment::kRandomFlip, data::Augment::kPadCrop, data::Augment::kRandomErasing};
  t.erasing.prob = 1.0;
  const data::Transform transform(t);
  std::vector<data::ImageRecord> list(6, repeated);
  for (int i = 0; i < 6; ++i) list.push_back(tracklet(i, i % 2, 9));
  const auto records = data::make_record_list(list);
  std::vector<std::vector<data::Batch>> runs;
  for (int workers : {0, 3}) {
    data::LoaderOptions options;
    options.seq_len = 4;
    options.sampling = data::FrameSampling::kRandom;
    options.workers = workers;
    data::DataLoader loader(records, transform, options);
    runs.push_back(load_all(loader, {{0, 1, 2, 3, 4, 5}, {6, 7, 8, 9, 10, 11}}, 11));
  }
  const auto& clips = runs[0][0].images;
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t f = 1; f < 4; ++f) EXPECT_TRUE(torch::equal(clips[i][f], clips[i][0])) << i << " " << f;
  // Different clips get different draws.
  EXPECT_FALSE(torch::equal(clips[0][0], clips[1][0]));
  for (std::size_t b = 0; b < 2; ++b) EXPECT_TRUE(torch::equal(runs[0][b].images, runs[1][b].images)) << b;
  // random sampling picks different frames of the 9 for different tracklets and seeds: the clips
  // of two loads with another seed differ.
  data::LoaderOptions options;
  options.seq_len = 4;
  options.sampling = data::FrameSampling::kRandom;
  data::DataLoader loader(records, transform, options);
  EXPECT_FALSE(torch::equal(load_all(loader, {{6, 7, 8, 9, 10, 11}}, 12)[0].images, runs[0][1].images));
}

TEST(VideoExtract, DenseProtocolAveragesEveryClipOfEveryFrame) {
  torch::manual_seed(0);
  models::ModelOptions options;
  options.head(models::HeadOptions().num_classes(4));
  auto model = models::make_temporal_model("osnet_x0_25", options, models::TemporalPooling::kAvg);
  model->eval();
  const auto records = data::make_record_list({tracklet(1, 0, 5), tracklet(2, 1, 2, 3)});
  const data::Transform transform(plain_transform());
  deploy::ExtractOptions extract;
  extract.seq_len = 2;
  extract.batch_size = 2;
  extract.sampling = data::FrameSampling::kAll;
  const auto dense = deploy::extract_features(*model, records, transform, extract);
  ASSERT_EQ(dense.features.sizes(), (std::vector<int64_t>{2, 512}));
  EXPECT_EQ(dense.pids[1].item<int64_t>(), 2);
  EXPECT_EQ(dense.camids[1].item<int64_t>(), 1);
  EXPECT_EQ(dense.paths[0], (*records)[0].path);
  // By hand: 5 frames in clips of 2: (0, 1), (2, 3), (4, 4); the tracklet's feature is the mean.
  const auto clip = [&](int64_t record, std::vector<int64_t> frames) {
    std::vector<torch::Tensor> images;
    for (int64_t f : frames)
      images.push_back(transform(data::read_image((*(*records)[static_cast<std::size_t>(record)].frames)[static_cast<std::size_t>(f)])));
    torch::NoGradGuard no_grad;
    return model->forward(torch::stack(images).unsqueeze(0)).feature[0];
  };
  const auto expected = (clip(0, {0, 1}) + clip(0, {2, 3}) + clip(0, {4, 4})) / 3.0;
  EXPECT_TRUE(torch::allclose(dense.features[0], expected, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(dense.features[1], clip(1, {0, 1}), 1e-4, 1e-5));
  // evenly: one clip of seq_len frames (5 frames cut to 4, every second: 0, 2).
  extract.sampling = data::FrameSampling::kEvenly;
  const auto single = deploy::extract_features(*model, records, transform, extract);
  EXPECT_TRUE(torch::allclose(single.features[0], clip(0, {0, 2}), 1e-4, 1e-5));
}

const char* kVideoConfig = R"(
model: {name: osnet_x0_25, temporal_pooling: avg}
data:
  sources: [synthetic_video]
  targets: [synthetic_video]
  height: 64
  width: 32
  seq_len: 3
  train_sampling: random
  test_sampling: all
  synthetic: {train_ids: 8, test_ids: 6, cameras: 2, height: 64, width: 32, tracklets_per_camera: 2, frames: 4}
  transforms: [random_flip, random_erasing]
  batch_size: 8
  workers: 2
sampler: {name: identity, num_instances: 2}
loss: {names: [ce, triplet]}
solver: {optimizer: adam, base_lr: 0.003, max_epochs: 3, milestones: [2], warmup_epochs: 0, eval_period: 3, checkpoint_period: 1, log_period: 1}
test: {batch_size: 16}
)";

std::string write_video_config(const test::TempDir& dir) {
  const auto path = dir / "video.yaml";
  test::write_file(path, std::string(kVideoConfig) + "output_dir: " + (dir / "run").string() + "\n");
  return path.string();
}

TEST(VideoTraining, LearnsTheSyntheticVideoSetAndReidTestReloadsTheClipModel) {
  test::TempDir dir;
  const std::string path = write_video_config(dir);
  // 24 training identities, 15 epochs; 16 test identities x 2 cameras.
  const Config config = config::load_config(
      path, {"data.synthetic.train_ids=24", "data.synthetic.test_ids=16", "solver.max_epochs=15",
             "solver.milestones=[12]", "solver.eval_period=15", "data.seq_len=4"});
  const auto result = app::train(config, false);
  ASSERT_EQ(result.results.count("synthetic_video"), 1u);
  const auto& trained = result.results.at("synthetic_video");
  EXPECT_EQ(trained.num_queries, 16 * 2);
  // An untrained clip model of the same shape, evaluated the same way, for comparison.
  torch::manual_seed(1);
  const auto untrained_model = deploy::build_model(config, 24, torch::kCPU, models::builtin_models(), 0, /*video=*/true);
  const std::string untrained_weights = (dir / "untrained.pt").string();
  models::save_weights(*untrained_model, untrained_weights);
  const auto untrained = app::test(config::load_config(path, {"data.synthetic.train_ids=24", "data.synthetic.test_ids=16",
                                                         "data.seq_len=4", "test.weights=" + untrained_weights,
                                                         "output_dir=" + (dir / "untrained").string()}));
  // A query's gallery: 2 tracklets of each of the 16 identities in the other camera.
  const double chance = 2.0 / 32;
  const auto& before = untrained.at("synthetic_video");
  std::printf("synthetic video: untrained rank-1 %.3f mAP %.3f, trained rank-1 %.3f mAP %.3f (chance rank-1 %.3f)\n",
              before.cmc[0], before.mAP, trained.cmc[0], trained.mAP, chance);
  EXPECT_GT(trained.cmc[0], 5 * chance);
  EXPECT_GT(trained.mAP, before.mAP + 0.1);
  // reid-test rebuilds the clip model from the weights (keys under "backbone.") and gives the
  // same metrics.
  const auto tested = app::test(config);
  EXPECT_NEAR(tested.at("synthetic_video").mAP, trained.mAP, 1e-6);
}

TEST(VideoTraining, SigintMidEpochResumesBitIdentical) {
  test::TempDir dir;
  const std::string path = write_video_config(dir);
  const std::string reference = (dir / "reference").string(), stopped = (dir / "stopped").string();
  ASSERT_EQ(test::wait_exit(test::spawn({test::tool("reid-train"), "-c", path, "-o", reference}, dir / "a.log")), 0)
      << test::read_file(dir / "a.log");
  const int pid = test::spawn({test::tool("reid-train"), "-c", path, "-o", stopped}, dir / "b.log");
  // 8 identities x 2 cameras x 2 tracklets = 32 tracklets, 4 steps an epoch: stop in epoch 2.
  const fs::path metrics = fs::path(stopped) / "metrics.jsonl";
  while (true) {
    const std::string text = fs::exists(metrics) ? test::read_file(metrics) : "";
    if (text.find("\"iteration\": 6,") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGINT);
  EXPECT_EQ(test::wait_exit(pid), 130) << test::read_file(dir / "b.log");
  EXPECT_NE(test::read_file(dir / "b.log").find("interrupted at epoch 2,"), std::string::npos) << test::read_file(dir / "b.log");
  ASSERT_EQ(test::wait_exit(test::spawn({test::tool("reid-train"), "-c", path, "-o", stopped, "--resume"}, dir / "c.log")), 0)
      << test::read_file(dir / "c.log");
  test::expect_same_weights(reference + "/model_final.pt", stopped + "/model_final.pt");
}

TEST(VideoSplits, TheScriptTrainsEverySplitAndAveragesThem) {
  // A small iLIDS-VID tree: 6 persons in both cameras, 3 frames each.
  test::TempDir dir;
  const auto sequences = dir / "data/ilids-vid/i-LIDS-VID/sequences";
  for (int p = 1; p <= 6; ++p)
    for (const char* camera : {"cam1", "cam2"})
      for (int f = 0; f < 3; ++f)
        test::write_image(sequences / camera / ("person00" + std::to_string(p)) / ("f" + std::to_string(f) + ".png"), 64,
                          32, static_cast<unsigned>(p * 10 + f));
  test::write_file(dir / "ilids.yaml", "model: {name: osnet_x0_25}\n"
                                       "data: {sources: [ilidsvid], targets: [ilidsvid], root: " +
                                           (dir / "data").string() +
                                           ", height: 64, width: 32, seq_len: 2, batch_size: 4, workers: 0}\n"
                                           "sampler: {name: random}\n"
                                           "solver: {max_epochs: 1, warmup_epochs: 0, milestones: []}\n");
  const auto root = dir / "splits";
  const auto r = test::run_command("REID_TRAIN=" + test::tool("reid-train") + " bash " +
                                   (test::source_dir() / "scripts/video_splits.sh").string() + " " +
                                   (dir / "ilids.yaml").string() + " " + root.string() + " 2");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto summary = test::read_file(root / "splits_summary.txt");
  EXPECT_NE(summary.find("\n0 "), std::string::npos) << summary;
  EXPECT_NE(summary.find("\n1 "), std::string::npos) << summary;
  EXPECT_NE(summary.find("mean"), std::string::npos) << summary;
  std::printf("%s", summary.c_str());
  // The two splits test different persons: the splits file the parser wrote holds both.
  EXPECT_TRUE(fs::exists(sequences / "libreid_splits_2x_seed0.txt"));
  EXPECT_TRUE(fs::exists(root / "split_1/model_final.pt"));
  // A second call trains nothing again.
  const auto again = test::run_command("REID_TRAIN=" + test::tool("reid-train") + " bash " +
                                       (test::source_dir() / "scripts/video_splits.sh").string() + " " +
                                       (dir / "ilids.yaml").string() + " " + root.string() + " 2");
  EXPECT_NE(again.out.find("split 1: done before"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace reid::engine
