#pragma once
/// @file
/// Video ReID data: tracklets (a person's crops from one camera over consecutive frames), their
/// splits, how frames are sampled from a tracklet for training and test, and a synthetic video
/// set built from the synthetic pedestrians (no download).
///
/// Frame sampling follows the video ReID literature (torchreid's VideoDataset, the MARS
/// protocol): training draws one clip of `seq_len` frames per tracklet (`random`, `evenly` or
/// `consecutive`); testing takes one `evenly` spaced clip, or `all` frames in clips of `seq_len`
/// whose features are averaged (the dense protocol).

#include <cstdint>
#include <string>
#include <vector>

#include "reid/core/registry.h"
#include "reid/data/datasets.h"
#include "reid/data/records.h"
#include "reid/utils/random.h"

namespace reid::data {

/// One tracklet: its frames in temporal order, who it shows, which camera saw it.
struct Tracklet {
  std::vector<std::string> frames;
  /// Identity (training tracklets: labels 0..N-1; query/gallery: the dataset's raw ids).
  int64_t pid = 0;
  /// Camera, 0-based.
  int64_t camid = 0;
};

/// How frames are taken from a tracklet.
enum class FrameSampling {
  /// seq_len distinct frames drawn at random, in temporal order (with repetition when the
  /// tracklet is shorter).
  kRandom,
  /// seq_len frames evenly spaced from the first: the tracklet is cut to a multiple of seq_len
  /// frames (the rest dropped) and every (length / seq_len)-th frame taken.
  kEvenly,
  /// seq_len consecutive frames from a random start.
  kConsecutive,
  /// Every frame, in consecutive clips of seq_len (test only: the clips' features are averaged).
  kAll,
};

/// The sampling modes by name: random, evenly, consecutive, all.
const Registry<FrameSampling()>& frame_sampling_registry();

/// Parses a sampling mode; throws reid::Error listing the valid names.
FrameSampling parse_frame_sampling(const std::string& name);

/// Frame indices of a tracklet of `frames` frames: one clip of `seq_len` indices for kRandom,
/// kEvenly and kConsecutive, every clip for kAll. A tracklet shorter than seq_len is padded by
/// repeating its last frame (kEvenly, kConsecutive, kAll's last clip) or drawn with repetition
/// (kRandom). `rng` is used by kRandom and kConsecutive only. Throws reid::Error for an empty
/// tracklet or seq_len < 1.
std::vector<std::vector<int64_t>> sample_frames(int64_t frames, int64_t seq_len, FrameSampling mode, utils::Rng& rng);

/// One record per tracklet (the first frame's path, pid, camid, and the frames): what identity
/// samplers, the loader and the evaluator read. Throws reid::Error for a tracklet without frames.
std::vector<ImageRecord> tracklet_records(const std::vector<Tracklet>& tracklets);

/// True when `records` are tracklets (every record has frames); false for images. Throws
/// reid::Error when images and tracklets are mixed.
bool is_video(const std::vector<ImageRecord>& records);

/// The synthetic video set (`options.synthetic`: identities, cameras, image size, seed,
/// tracklets_per_camera, frames; images_per_camera is not used): each identity walks through every camera `tracklets_per_camera`
/// times, `frames` frames each; frame j of tracklet k is synthetic image k * frames + j of that
/// identity and camera (each a new pose, position and occlusion draw of the same person under
/// the camera's conditions). Train: identities 0..train_ids-1, relabelled; query: tracklet 0
/// of each test identity in each camera; gallery: every test tracklet (the query ones too, as
/// MARS's gallery holds its query tracklets; the protocol's same-camera exclusion drops them).
DatasetSplits synthetic_video_dataset(const DatasetOptions& options);

}  // namespace reid::data
