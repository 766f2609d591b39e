// Video data: frame sampling by hand for every mode (short tracklets padded), seeded draws, the
// synthetic video set's splits and counts, and the errors.
#include <gtest/gtest.h>

#include <set>

#include "reid/core/error.h"
#include "reid/data/synthetic.h"
#include "reid/data/tracklets.h"

namespace reid::data {
namespace {

using Clips = std::vector<std::vector<int64_t>>;

Clips sample(int64_t frames, int64_t seq_len, FrameSampling mode, uint64_t seed = 0) {
  utils::Rng rng(seed);
  return sample_frames(frames, seq_len, mode, rng);
}

TEST(FrameSampling, EvenlyCutsToAMultipleAndStepsThroughIt) {
  // 10 frames, 4 per clip: cut to 8, every 2nd frame.
  EXPECT_EQ(sample(10, 4, FrameSampling::kEvenly), (Clips{{0, 2, 4, 6}}));
  EXPECT_EQ(sample(13, 4, FrameSampling::kEvenly), (Clips{{0, 3, 6, 9}}));
  EXPECT_EQ(sample(4, 4, FrameSampling::kEvenly), (Clips{{0, 1, 2, 3}}));
  // Shorter than a clip: every frame, the last one repeated.
  EXPECT_EQ(sample(3, 4, FrameSampling::kEvenly), (Clips{{0, 1, 2, 2}}));
  EXPECT_EQ(sample(1, 3, FrameSampling::kEvenly), (Clips{{0, 0, 0}}));
}

TEST(FrameSampling, AllFramesInClipsTheLastPadded) {
  EXPECT_EQ(sample(10, 4, FrameSampling::kAll), (Clips{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 9, 9}}));
  EXPECT_EQ(sample(8, 4, FrameSampling::kAll), (Clips{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(sample(2, 4, FrameSampling::kAll), (Clips{{0, 1, 1, 1}}));
}

TEST(FrameSampling, ConsecutiveRunsStartAnywhereAndRepeatWithTheSeed) {
  std::set<int64_t> starts;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const auto clips = sample(10, 4, FrameSampling::kConsecutive, seed);
    ASSERT_EQ(clips.size(), 1u);
    const auto& clip = clips[0];
    ASSERT_EQ(clip.size(), 4u);
    for (std::size_t i = 1; i < clip.size(); ++i) EXPECT_EQ(clip[i], clip[i - 1] + 1);
    EXPECT_EQ(clips, sample(10, 4, FrameSampling::kConsecutive, seed));
    starts.insert(clip[0]);
  }
  EXPECT_EQ(starts, (std::set<int64_t>{0, 1, 2, 3, 4, 5, 6}));  // every start that fits
  EXPECT_EQ(sample(3, 4, FrameSampling::kConsecutive), (Clips{{0, 1, 2, 2}}));
}

TEST(FrameSampling, RandomDrawsDistinctSortedFramesAndRepeatsOnlyWhenShort) {
  std::set<int64_t> seen;
  std::set<std::vector<int64_t>> different;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const auto clip = sample(10, 4, FrameSampling::kRandom, seed).at(0);
    ASSERT_EQ(clip.size(), 4u);
    EXPECT_TRUE(std::is_sorted(clip.begin(), clip.end()));
    EXPECT_EQ(std::set<int64_t>(clip.begin(), clip.end()).size(), 4u) << "distinct frames";
    EXPECT_EQ(clip, sample(10, 4, FrameSampling::kRandom, seed).at(0)) << "the seed fixes the draw";
    seen.insert(clip.begin(), clip.end());
    different.insert(clip);
  }
  EXPECT_EQ(seen.size(), 10u) << "every frame can be drawn";
  EXPECT_GT(different.size(), 50u);
  // Exactly as many frames as the clip: all of them.
  EXPECT_EQ(sample(4, 4, FrameSampling::kRandom, 7), (Clips{{0, 1, 2, 3}}));
  // Shorter: seq_len draws with repetition, sorted, in range.
  const auto short_clip = sample(2, 5, FrameSampling::kRandom, 3).at(0);
  EXPECT_EQ(short_clip.size(), 5u);
  EXPECT_TRUE(std::is_sorted(short_clip.begin(), short_clip.end()));
  for (int64_t f : short_clip) EXPECT_TRUE(f == 0 || f == 1);
}

TEST(FrameSampling, ErrorsNameTheProblem) {
  EXPECT_THROW(sample(0, 4, FrameSampling::kEvenly), Error);
  EXPECT_THROW(sample(5, 0, FrameSampling::kAll), Error);
  try {
    parse_frame_sampling("evenley");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'evenly'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(parse_frame_sampling("all"), FrameSampling::kAll);
}

TEST(SyntheticVideo, SplitsCountsAndFrames) {
  DatasetOptions options;
  auto& o = options.synthetic;
  o.train_ids = 3;
  o.test_ids = 2;
  o.cameras = 3;
  o.height = 32;
  o.width = 16;
  o.tracklets_per_camera = 2;
  o.frames = 4;
  const auto splits = load_dataset("synthetic_video", options);
  EXPECT_EQ(splits.train.size(), 3u * 3u * 2u);
  EXPECT_EQ(splits.query.size(), 2u * 3u);
  EXPECT_EQ(splits.gallery.size(), 2u * 3u * 2u);
  EXPECT_EQ(count_pids(splits.train), 3);
  EXPECT_EQ(count_pids(splits.query), 2);
  EXPECT_TRUE(is_video(splits.train) && is_video(splits.gallery));
  // Tracklet 1 of identity 4 in camera 2 holds synthetic images 4..7 of that identity and camera.
  const auto& t = splits.gallery.back();
  EXPECT_EQ(t.pid, 4);
  EXPECT_EQ(t.camid, 2);
  ASSERT_EQ(t.frames->size(), 4u);
  EXPECT_EQ(t.path, t.frames->front());
  SyntheticImage image;
  ASSERT_TRUE(parse_synthetic_path((*t.frames)[2], image));
  EXPECT_EQ(image.pid, 4);
  EXPECT_EQ(image.camera, 2);
  EXPECT_EQ(image.index, 6);
  // Frames of a tracklet are different images of the same person.
  EXPECT_GT(cv::norm(render_synthetic(image), render_synthetic({0, 32, 16, 4, 2, 7})), 0.0);
  // Images and tracklets do not mix.
  auto mixed = splits.query;
  mixed.push_back({"x.jpg", 1, 0});
  EXPECT_THROW(is_video(mixed), Error);
  EXPECT_FALSE(is_video({{"x.jpg", 1, 0}}));
  EXPECT_THROW(tracklet_records({Tracklet{{}, 1, 0}}), Error);
  o.tracklets_per_camera = 1;
  EXPECT_THROW(synthetic_video_dataset(options), Error);
}

}  // namespace
}  // namespace reid::data
