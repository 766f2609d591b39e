#pragma once
/// @file
/// Video dataset parsers, registered with the image ones (register_builtin_datasets()): mars,
/// dukemtmcvidreid, ilidsvid, prid2011, custom_video and synthetic_video. Each gives one record
/// per tracklet (ImageRecord::frames; data/tracklets.h) in train / query / gallery. Layouts are
/// in docs/datasets.md.

#include <cstdint>
#include <string>
#include <vector>

#include "reid/data/datasets.h"

namespace reid::data {

/// MARS: <root>/mars/{bbox_train,bbox_test,info}, info/ holding train_name.txt, test_name.txt,
/// tracks_train_info.mat, tracks_test_info.mat (rows: first frame, last frame (1-based, into the
/// name list), pid, camera 1-6) and query_IDX.mat (1-based rows of the test tracks). Frames are
/// bbox_<split>/<first 4 characters of the name>/<name>. As torchreid: tracklets of pid -1 are
/// dropped, pid 0 (distractors) stays; the gallery is every test tracklet that is not a query.
/// 625 training identities, 1,980 query and 9,330 gallery tracklets. Needs matio.
DatasetSplits mars(const DatasetOptions& options);

/// DukeMTMC-VideoReID: <root>/dukemtmc-vidreid/DukeMTMC-VideoReID/{train,query,gallery}/<pid>/
/// <tracklet>/<frames>; the camera is read from the first frame's name (0001_C6_F0001_X....jpg,
/// or the older 0001C6F0001X....jpg).
DatasetSplits dukemtmcvidreid(const DatasetOptions& options);

/// iLIDS-VID: <root>/ilids-vid/i-LIDS-VID/sequences/{cam1,cam2}/personNNN/<frames>. The persons
/// seen by both cameras are split at random into train and test halves (VideoOptions: split_id
/// of num_splits, split_seed, the splits file); train: both cameras' sequences; query: camera
/// 1's; gallery: camera 2's.
DatasetSplits ilidsvid(const DatasetOptions& options);

/// PRID2011: <root>/prid2011/prid_2011/multi_shot/{cam_a,cam_b}/person_NNNN/<frames>; the persons
/// of both cameras (200) split as for iLIDS-VID; query: cam_a, gallery: cam_b.
DatasetSplits prid2011(const DatasetOptions& options);

/// Tracklets from list files (DatasetOptions::custom's train / query / gallery lists, relative
/// to its image_root): a line `folder pid camid` is one tracklet (the folder's images in sorted
/// order); lines `frame pid camid tracklet` are frames of the tracklet named `tracklet` (any
/// word, unique within the list), in line order.
DatasetSplits custom_video(const DatasetOptions& options);

/// One random division of persons into training and test halves.
struct PersonSplit {
  std::vector<int64_t> train;
  std::vector<int64_t> test;
};

/// `count` random splits of `persons` (each: floor(n / 2) train, the rest test, both sorted),
/// drawn from `seed` with the portable generator (the same splits on every machine).
std::vector<PersonSplit> random_person_splits(std::vector<int64_t> persons, int count, uint64_t seed);

/// Writes `splits` as text, one line per split: the train persons, `|`, the test persons.
void write_person_splits(const std::string& path, const std::vector<PersonSplit>& splits, const std::string& header);

/// Reads a splits file; IOError naming the file and line for a malformed line, a person seen
/// twice in a split, or a person not in `persons` (the persons of the dataset).
std::vector<PersonSplit> read_person_splits(const std::string& path, const std::vector<int64_t>& persons);

}  // namespace reid::data
