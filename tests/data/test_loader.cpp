#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/data/loader.h"
#include "reid/data/synthetic.h"
#include "support.h"

namespace reid::data {
namespace {

RecordList synthetic_records(int n) {
  std::vector<ImageRecord> records;
  for (int i = 0; i < n; ++i) records.push_back({synthetic_path({0, 64, 32, i / 4, i % 4, 0}), i / 4, i % 4});
  return make_record_list(records);
}

Transform train_transform() {
  TransformOptions o;
  o.height = 32;
  o.width = 16;
  o.augments = {Augment::kRandomFlip, Augment::kPadCrop, Augment::kRandomErasing};
  return Transform(o);
}

std::vector<std::vector<int64_t>> chunks(int n, int size) {
  std::vector<std::vector<int64_t>> out;
  for (int start = 0; start < n; start += size) {
    std::vector<int64_t> batch;
    for (int i = start; i < std::min(n, start + size); ++i) batch.push_back((i * 7) % n);
    out.push_back(batch);
  }
  return out;
}

std::vector<Batch> run(DataLoader& loader, const std::vector<std::vector<int64_t>>& batches, uint64_t seed) {
  loader.start(batches, seed);
  std::vector<Batch> out;
  while (auto batch = loader.next()) out.push_back(std::move(*batch));
  return out;
}

TEST(DataLoader, OutputIsIndependentOfTheNumberOfWorkers) {
  const auto records = synthetic_records(40);
  const auto batches = chunks(40, 6);
  std::vector<std::vector<Batch>> results;
  for (int workers : {0, 1, 3}) {
    LoaderOptions options;
    options.workers = workers;
    options.prefetch = 2;
    DataLoader loader(records, train_transform(), options);
    results.push_back(run(loader, batches, 99));
  }
  for (const auto& result : results) {
    ASSERT_EQ(result.size(), batches.size());
    for (std::size_t i = 0; i < result.size(); ++i) {
      EXPECT_EQ(result[i].indices, batches[i]) << "in order";
      EXPECT_TRUE(torch::equal(result[i].images, results[0][i].images));
      EXPECT_TRUE(result[i].images.is_contiguous());
      EXPECT_EQ(result[i].images.sizes(), (std::vector<int64_t>{static_cast<int64_t>(batches[i].size()), 3, 32, 16}));
      EXPECT_EQ(result[i].pids[0].item<int64_t>(), (*records)[batches[i][0]].pid);
      EXPECT_EQ(result[i].camids[1].item<int64_t>(), (*records)[batches[i][1]].camid);
    }
  }
}

TEST(DataLoader, SeedAndPositionDetermineTheAugmentation) {
  const auto records = synthetic_records(8);
  DataLoader loader(records, train_transform(), LoaderOptions());
  const auto a = run(loader, {{0, 1, 2, 3}}, 5);
  const auto b = run(loader, {{0, 1, 2, 3}}, 6);
  EXPECT_FALSE(torch::equal(a[0].images, b[0].images));
  // Resuming at position 1 reproduces batch 1 of the full run.
  const auto full = run(loader, {{0, 1}, {2, 3}}, 5);
  loader.start({{2, 3}}, 5, /*first_position=*/1);
  const auto resumed = loader.next();
  ASSERT_TRUE(resumed.has_value());
  EXPECT_TRUE(torch::equal(resumed->images, full[1].images));
}

TEST(DataLoader, WorkerErrorsReachTheCallerWithThePath) {
  test::TempDir dir;
  test::write_file(dir / "broken.jpg", "garbage");
  std::vector<ImageRecord> list = *synthetic_records(6);
  list[4].path = (dir / "broken.jpg").string();
  const auto records = make_record_list(list);
  LoaderOptions options;
  options.workers = 2;
  DataLoader loader(records, train_transform(), options);
  loader.start({{0, 1}, {2, 3}, {4, 5}}, 0);
  EXPECT_TRUE(loader.next().has_value());
  EXPECT_TRUE(loader.next().has_value());
  try {
    loader.next();
    FAIL() << "expected the broken image to fail";
  } catch (const IOError& e) {
    EXPECT_EQ(e.path(), (dir / "broken.jpg").string());
  }
  EXPECT_FALSE(loader.next().has_value()) << "the failed run is over";
  // The loader is still usable.
  loader.start({{0, 1}}, 0);
  EXPECT_TRUE(loader.next().has_value());
}

TEST(DataLoader, SkipBadImagesWhenAsked) {
  test::TempDir dir;
  std::vector<ImageRecord> list = *synthetic_records(6);
  list[1].path = (dir / "missing.jpg").string();
  LoaderOptions options;
  options.skip_bad_images = true;
  DataLoader loader(make_record_list(list), train_transform(), options);
  const auto out = run(loader, {{0, 1, 2}}, 0);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].images.size(0), 2);
  EXPECT_EQ(out[0].indices, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(out[0].skipped, 1);
  EXPECT_EQ(loader.skipped(), 1);
}

TEST(DataLoader, RestartDropsTheUndeliveredBatches) {
  const auto records = synthetic_records(40);
  LoaderOptions options;
  options.workers = 2;
  DataLoader loader(records, train_transform(), options);
  loader.start(chunks(40, 4), 1);
  loader.next();
  const auto fresh = run(loader, {{5, 6}}, 2);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].indices, (std::vector<int64_t>{5, 6}));
  EXPECT_THROW(loader.start({{40}}, 0), c10::Error) << "index out of range";
}

}  // namespace
}  // namespace reid::data
