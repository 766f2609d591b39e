#include "reid/data/tracklets.h"

#include <algorithm>

#include "reid/core/error.h"
#include "reid/data/synthetic.h"

namespace reid::data {

const Registry<FrameSampling()>& frame_sampling_registry() {
  static const auto registry = [] {
    Registry<FrameSampling()> r("frame sampling");
    for (const auto& [name, mode] : std::vector<std::pair<std::string, FrameSampling>>{
             {"random", FrameSampling::kRandom},
             {"evenly", FrameSampling::kEvenly},
             {"consecutive", FrameSampling::kConsecutive},
             {"all", FrameSampling::kAll}})
      r.add(name, [mode = mode] { return mode; });
    return r;
  }();
  return registry;
}

FrameSampling parse_frame_sampling(const std::string& name) { return frame_sampling_registry().create(name); }

namespace {
// [first, first + count) clipped to the tracklet, padded with its last frame to `count`.
std::vector<int64_t> run_of(int64_t first, int64_t count, int64_t frames) {
  std::vector<int64_t> clip;
  for (int64_t i = 0; i < count; ++i) clip.push_back(std::min(first + i, frames - 1));
  return clip;
}
}  // namespace

std::vector<std::vector<int64_t>> sample_frames(int64_t frames, int64_t seq_len, FrameSampling mode, utils::Rng& rng) {
  if (frames < 1) throw Error("a tracklet needs at least one frame");
  if (seq_len < 1) throw Error("clips need at least one frame (seq_len " + std::to_string(seq_len) + ")");
  switch (mode) {
    case FrameSampling::kRandom: {
      std::vector<int64_t> clip;
      if (frames >= seq_len) {
        // seq_len distinct frames: the first seq_len of a partial Fisher-Yates shuffle.
        std::vector<int64_t> all(static_cast<std::size_t>(frames));
        for (int64_t i = 0; i < frames; ++i) all[static_cast<std::size_t>(i)] = i;
        for (int64_t i = 0; i < seq_len; ++i)
          std::swap(all[static_cast<std::size_t>(i)],
                    all[static_cast<std::size_t>(i + static_cast<int64_t>(utils::uniform_index(
                                                            rng, static_cast<uint64_t>(frames - i))))]);
        clip.assign(all.begin(), all.begin() + seq_len);
      } else {
        for (int64_t i = 0; i < seq_len; ++i)
          clip.push_back(static_cast<int64_t>(utils::uniform_index(rng, static_cast<uint64_t>(frames))));
      }
      std::sort(clip.begin(), clip.end());
      return {clip};
    }
    case FrameSampling::kEvenly: {
      if (frames < seq_len) return {run_of(0, seq_len, frames)};
      const int64_t step = (frames - frames % seq_len) / seq_len;
      std::vector<int64_t> clip;
      for (int64_t i = 0; i < seq_len; ++i) clip.push_back(i * step);
      return {clip};
    }
    case FrameSampling::kConsecutive: {
      const int64_t start = frames > seq_len ? utils::uniform_int(rng, 0, frames - seq_len) : 0;
      return {run_of(start, seq_len, frames)};
    }
    case FrameSampling::kAll: {
      std::vector<std::vector<int64_t>> clips;
      for (int64_t first = 0; first < frames; first += seq_len) clips.push_back(run_of(first, seq_len, frames));
      return clips;
    }
  }
  throw Error("unknown frame sampling mode");
}

std::vector<ImageRecord> tracklet_records(const std::vector<Tracklet>& tracklets) {
  std::vector<ImageRecord> records;
  records.reserve(tracklets.size());
  for (const auto& t : tracklets) {
    if (t.frames.empty()) throw Error("a tracklet of identity " + std::to_string(t.pid) + " has no frames");
    records.push_back({t.frames.front(), t.pid, t.camid, std::make_shared<const std::vector<std::string>>(t.frames)});
  }
  return records;
}

bool is_video(const std::vector<ImageRecord>& records) {
  std::size_t clips = 0;
  for (const auto& r : records) clips += r.frames != nullptr;
  if (clips != 0 && clips != records.size())
    throw Error("a record list mixes " + std::to_string(clips) + " tracklets with " +
                std::to_string(records.size() - clips) + " images");
  return clips != 0;
}

DatasetSplits synthetic_video_dataset(const DatasetOptions& dataset_options) {
  const auto& o = dataset_options.synthetic;
  if (o.tracklets_per_camera < 2)
    throw Error("the synthetic video set needs at least 2 tracklets per identity and camera (query and gallery): "
                "data.synthetic.tracklets_per_camera is " + std::to_string(o.tracklets_per_camera));
  if (o.frames < 1) throw Error("synthetic tracklets need at least one frame (data.synthetic.frames)");
  DatasetSplits splits;
  splits.name = "synthetic_video";
  const auto tracklet = [&](int64_t pid, int64_t camera, int64_t k) {
    Tracklet t;
    t.pid = pid;
    t.camid = camera;
    for (int64_t j = 0; j < o.frames; ++j)
      t.frames.push_back(synthetic_path({o.seed, o.height, o.width, pid, camera, k * o.frames + j}));
    return t;
  };
  std::vector<Tracklet> train, query, gallery;
  for (int64_t pid = 0; pid < o.train_ids + o.test_ids; ++pid)
    for (int64_t camera = 0; camera < o.cameras; ++camera)
      for (int64_t k = 0; k < o.tracklets_per_camera; ++k) {
        auto t = tracklet(pid, camera, k);
        if (pid < o.train_ids) {
          train.push_back(std::move(t));
          continue;
        }
        if (k == 0) query.push_back(t);
        gallery.push_back(std::move(t));
      }
  splits.train = tracklet_records(train);
  splits.query = tracklet_records(query);
  splits.gallery = tracklet_records(gallery);
  return splits;
}

}  // namespace reid::data
