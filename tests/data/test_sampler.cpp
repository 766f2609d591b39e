#include <gtest/gtest.h>

#include <map>
#include <set>

#include "reid/core/error.h"
#include "reid/data/sampler.h"

namespace reid::data {
namespace {

// ids 0..9; id i has i + 1 images spread over 3 cameras.
RecordList make_records() {
  std::vector<ImageRecord> records;
  for (int64_t pid = 0; pid < 10; ++pid)
    for (int64_t k = 0; k <= pid; ++k) records.push_back({"img", pid, k % 3});
  return make_record_list(records);
}

std::vector<std::vector<int64_t>> drain(Sampler& sampler) {
  std::vector<std::vector<int64_t>> out;
  while (auto batch = sampler.next()) out.push_back(*batch);
  return out;
}

TEST(RandomSampler, EachEpochIsAPermutation) {
  RandomSampler sampler(55, 8, /*drop_last=*/false, 3);
  const auto epoch0 = drain(sampler);
  ASSERT_EQ(epoch0.size(), 7u);
  EXPECT_EQ(epoch0.back().size(), 55u - 6 * 8);
  std::set<int64_t> seen;
  for (const auto& b : epoch0) seen.insert(b.begin(), b.end());
  EXPECT_EQ(seen.size(), 55u);
  sampler.next_epoch();
  EXPECT_NE(drain(sampler), epoch0) << "a new order every epoch";
  RandomSampler dropping(55, 8, true, 3);
  EXPECT_EQ(drain(dropping).size(), 6u);
  EXPECT_EQ(RandomSampler(55, 8, false, 3).plan(0), epoch0) << "deterministic in the seed";
}

TEST(IdentitySampler, EveryBatchHasPDistinctIdsTimesK) {
  const auto records = make_records();
  for (bool cross : {false, true}) {
    IdentitySampler sampler(records, 12, 4, 7, cross);
    const auto batches = sampler.plan(0);
    ASSERT_FALSE(batches.empty());
    for (const auto& batch : batches) {
      ASSERT_EQ(batch.size(), 12u);
      std::map<int64_t, int> per_id;
      for (int64_t index : batch) per_id[(*records)[index].pid]++;
      EXPECT_EQ(per_id.size(), 3u);
      for (const auto& entry : per_id) EXPECT_EQ(entry.second, 4);
      // Consecutive groups of K share an identity.
      for (std::size_t g = 0; g < 12; g += 4)
        for (std::size_t i = g; i < g + 4; ++i) EXPECT_EQ((*records)[batch[i]].pid, (*records)[batch[g]].pid);
    }
  }
}

TEST(IdentitySampler, SmallIdsAreSampledWithReplacement) {
  const auto records = make_records();
  IdentitySampler sampler(records, 8, 4, 1);
  std::set<int64_t> ids;
  for (int64_t epoch = 0; epoch < 5; ++epoch)
    for (const auto& batch : sampler.plan(epoch))
      for (std::size_t g = 0; g < batch.size(); g += 4) {
        const int64_t pid = (*records)[batch[g]].pid;
        ids.insert(pid);
        if (pid == 0) {
          // id 0 has a single image: its group of 4 repeats it.
          for (std::size_t i = g; i < g + 4; ++i) EXPECT_EQ(batch[i], batch[g]);
        }
      }
  EXPECT_EQ(ids.size(), 10u) << "over a few epochs every identity is drawn";
}

TEST(IdentitySampler, CrossCameraGroupsCoverTheCameras) {
  const auto records = make_records();
  IdentitySampler sampler(records, 9, 3, 5, /*cross_camera=*/true);
  for (const auto& batch : sampler.plan(2))
    for (std::size_t g = 0; g < batch.size(); g += 3) {
      const int64_t pid = (*records)[batch[g]].pid;
      if (pid < 2) continue;  // fewer than 3 images: drawn with replacement
      std::set<int64_t> cams;
      for (std::size_t i = g; i < g + 3; ++i) cams.insert((*records)[batch[i]].camid);
      EXPECT_EQ(cams.size(), 3u) << "pid " << pid;
    }
}

TEST(Sampler, StateRestoresTheSequenceMidEpoch) {
  const auto records = make_records();
  IdentitySampler a(records, 8, 2, 11);
  drain(a);
  a.next_epoch();
  a.next();
  a.next();
  const SamplerState saved = a.state();
  EXPECT_EQ(saved.epoch, 1);
  EXPECT_EQ(saved.position, 2);
  const auto rest = drain(a);
  a.next_epoch();
  const auto following = drain(a);

  IdentitySampler b(records, 8, 2, 11);
  b.load_state(saved);
  EXPECT_EQ(drain(b), rest);
  b.next_epoch();
  EXPECT_EQ(drain(b), following);
  IdentitySampler other_seed(records, 8, 2, 12);
  EXPECT_THROW(other_seed.load_state(saved), Error);
}

TEST(Sampler, FactoryAndErrors) {
  const auto records = make_records();
  EXPECT_NE(dynamic_cast<RandomSampler*>(make_sampler("random", records, 4, 2, true, 0).get()), nullptr);
  EXPECT_NE(dynamic_cast<IdentitySampler*>(make_sampler("cross_camera", records, 4, 2, true, 0).get()), nullptr);
  EXPECT_THROW(make_sampler("pk", records, 4, 2, true, 0), Error);
  EXPECT_THROW(IdentitySampler(records, 10, 4, 0), Error) << "batch not a multiple of K";
  EXPECT_THROW(IdentitySampler(records, 64, 4, 0), Error) << "16 ids needed, 10 available";
}

}  // namespace
}  // namespace reid::data
