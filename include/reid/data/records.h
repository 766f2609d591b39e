#pragma once
/// @file
/// Image records and dataset splits: what a dataset parser produces and everything downstream
/// (samplers, loaders, evaluation) consumes.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace reid::data {

/// One image: where it is, who it shows, which camera saw it.
struct ImageRecord {
  /// File path, or a `synthetic://` address rendered on the fly.
  std::string path;
  /// Identity. Training records carry labels 0..N-1; query/gallery records the dataset's raw ids.
  int64_t pid = 0;
  /// Camera, 0-based.
  int64_t camid = 0;
  /// Video: the tracklet's frames in temporal order (`path` is the first); null for an image.
  /// Samplers, relabelling and the evaluator treat a tracklet as one record; the loader takes
  /// a clip of its frames (LoaderOptions::seq_len, sampling).
  std::shared_ptr<const std::vector<std::string>> frames = nullptr;
};

/// Records shared between the dataset, samplers and loader threads without copying.
using RecordList = std::shared_ptr<const std::vector<ImageRecord>>;

/// Makes a RecordList from a vector.
RecordList make_record_list(std::vector<ImageRecord> records);

/// The splits of one dataset.
struct DatasetSplits {
  /// Registry name, e.g. "market1501".
  std::string name;
  std::vector<ImageRecord> train;
  /// Validation images (MSMT17's list_val), joined to train only by combine_all.
  std::vector<ImageRecord> val;
  std::vector<ImageRecord> query;
  std::vector<ImageRecord> gallery;
  /// Identities that are junk or distractors (Market-1501: 0 and -1): left out when
  /// query/gallery images join training.
  std::vector<int64_t> distractor_pids;
  /// The dataset's own identity of each training label (label i was identity train_ids[i]);
  /// empty when not known. Used to find identities shared by training and test splits.
  std::vector<int64_t> train_ids;
};

/// Identities (dataset ids, distractors excluded) that appear both in the training split and in
/// the query or gallery split of `splits` (a data leak when both are used).
std::vector<int64_t> shared_identities(const DatasetSplits& splits);

/// Number of distinct identities in `records`.
int64_t count_pids(const std::vector<ImageRecord>& records);

/// Number of distinct cameras in `records`.
int64_t count_cameras(const std::vector<ImageRecord>& records);

/// Relabels pids to 0..N-1 in sorted order of the original ids (deterministic); returns the
/// original ids (label i was id i).
std::vector<int64_t> relabel(std::vector<ImageRecord>& records);

/// combine_all: appends val, then query and gallery images (without distractor pids, with pids
/// offset past the training ones and relabelled) to the training split.
void combine_all(DatasetSplits& splits);

/// Concatenates the training splits of several datasets for joint training: each dataset's
/// labels are offset past the previous ones, and so are its camera ids.
std::vector<ImageRecord> merge_training_sets(const std::vector<DatasetSplits>& datasets);

/// The start-up statistics table: ids / images / cameras for train, query and gallery.
std::string statistics_table(const DatasetSplits& splits);

/// Throws reid::Error naming the dataset and split if any of train/query/gallery is empty
/// (`need_test`: check query and gallery too).
void check_not_empty(const DatasetSplits& splits, bool need_train, bool need_test);

/// Reads the header and end marker of every image of the training split (`train`) and / or the
/// query and gallery splits (`test`) before anything is trained (check_images()). Bad images
/// are an IOError naming the first one and how many there are; with `skip`, they are left out
/// (training labels renumbered) and counted in a warning instead. Returns how many were left out.
int64_t check_dataset_images(DatasetSplits& splits, bool train, bool test, int64_t max_pixels, bool skip);

}  // namespace reid::data
