#pragma once
/// @file
/// Dataset parsers, registered by name: market1501, dukemtmcreid, msmt17, cuhk03, custom,
/// synthetic, and the video sets (data/video_datasets.h). Each returns train / query / gallery records (path, pid, camid); layouts and
/// naming rules are in docs/datasets.md.

#include <string>

#include "reid/core/registry.h"
#include "reid/data/records.h"

namespace reid::data {

/// CUHK03 choices.
struct CUHK03Options {
  /// Hand-labeled boxes instead of detected ones.
  bool labeled = false;
  /// Classic protocol (20 random 1,367/100 splits) instead of the new 767/700 protocol.
  bool classic_split = false;
  /// Classic protocol split, 0-19.
  int split_id = 0;
};

/// The `custom` dataset: one list file per split, lines `relative/path pid camid`.
struct CustomOptions {
  /// Folder the relative paths start from (empty: DatasetOptions::root).
  std::string image_root;
  std::string train_list;
  std::string query_list;
  std::string gallery_list;
};

/// The procedural `synthetic` dataset.
struct SyntheticOptions {
  int train_ids = 100;
  int test_ids = 50;
  int cameras = 4;
  int images_per_camera = 4;
  int height = 128;
  int width = 64;
  int seed = 0;
  /// synthetic_video: tracklets of each identity in each camera (at least 2: query and gallery)
  /// and frames per tracklet.
  int tracklets_per_camera = 2;
  int frames = 8;
};

/// Video datasets (data/video_datasets.h).
struct VideoOptions {
  /// iLIDS-VID, PRID2011: which of the random person splits (0-based) trains and tests.
  int split_id = 0;
  /// iLIDS-VID, PRID2011: number of random splits (the literature: 10).
  int num_splits = 10;
  /// iLIDS-VID, PRID2011: seed of the random splits.
  int split_seed = 0;
  /// iLIDS-VID, PRID2011: the splits file; read when it exists, written when it does not.
  /// Empty: `libreid_splits_<num_splits>x_seed<split_seed>.txt` in the dataset's folder.
  std::string splits_file;
  /// Tracklets with fewer frames are dropped (MARS, DukeMTMC-VideoReID, custom_video); for
  /// iLIDS-VID and PRID2011, persons with a shorter sequence in either camera are left out (the
  /// PRID2011 protocol of 178 persons: sequences of more than 21 frames, min_frames 22).
  int min_frames = 0;
};

/// What every parser may need.
struct DatasetOptions {
  /// Folder holding the datasets (market1501/, dukemtmc-reid/, msmt17/, cuhk03/, cuhk03-np/).
  std::string root = "data";
  /// Train on val (MSMT17), query and gallery too (applied by load_dataset()).
  bool combine_all = false;
  CUHK03Options cuhk03;
  CustomOptions custom;
  SyntheticOptions synthetic;
  VideoOptions video;
};

/// Registry of dataset parsers.
using DatasetRegistry = Registry<DatasetSplits(const DatasetOptions&)>;

/// Adds market1501, dukemtmcreid, msmt17, cuhk03, custom, synthetic, and the video sets (one
/// record per tracklet: data/video_datasets.h) mars, dukemtmcvidreid, ilidsvid, prid2011,
/// custom_video and synthetic_video.
void register_builtin_datasets(DatasetRegistry& registry);

/// The built-in parsers (built once; copy it to add your own).
const DatasetRegistry& builtin_datasets();

/// Parses dataset `name` (training pids relabelled to 0..N-1, query/gallery pids raw), applies
/// combine_all, and checks that no split is empty.
DatasetSplits load_dataset(const std::string& name, const DatasetOptions& options,
                           const DatasetRegistry& registry = builtin_datasets());

/// Market-1501: <root>/market1501/Market-1501-v15.09.15/{bounding_box_train,query,
/// bounding_box_test}; names `0002_c1s1_000451_03.jpg` (pid 2, camera 1). pid -1 (junk) is
/// dropped, pid 0 (distractors) stays in the gallery.
DatasetSplits market1501(const DatasetOptions& options);

/// DukeMTMC-reID: <root>/dukemtmc-reid/DukeMTMC-reID/{bounding_box_train,query,bounding_box_test};
/// names `0001_c2_f0046182.jpg`, cameras 1-8.
DatasetSplits dukemtmcreid(const DatasetOptions& options);

/// MSMT17 V1 (<root>/msmt17/MSMT17_V1/{train,test}) or V2 (MSMT17_V2/{mask_train_v2,
/// mask_test_v2}), detected automatically, with list_{train,val,query,gallery}.txt; camera = the
/// third `_` field of the file name.
DatasetSplits msmt17(const DatasetOptions& options);

/// User data from list files (see CustomOptions and docs/datasets.md).
DatasetSplits custom_dataset(const DatasetOptions& options);

/// Every image under `dir` (recursively, in sorted order) for feature extraction; pid and
/// camid are parsed from Market-style names ("0002_c1s1_..."), or -1 when a name has none.
/// Throws reid::IOError when the folder is missing or holds no image.
std::vector<ImageRecord> image_folder_records(const std::string& dir);

/// Images listed one per line as `path` or `path pid camid` ('#' comments allowed); relative
/// paths start at `root`. pid and camid are -1 when not given.
std::vector<ImageRecord> image_list_records(const std::string& list, const std::string& root);

/// Parses a Market-style file name "<pid>_c<camera>..." (pid may be -1). Returns false when the
/// name does not match.
bool parse_market_name(const std::string& file_name, int64_t& pid, int64_t& camera);

}  // namespace reid::data
