#pragma once
/// @file
/// CUHK03 (Li, Zhao, Xiao, Wang, "DeepReID", CVPR 2014) in both releases in use:
/// - the CUHK03-NP folder release: <root>/cuhk03-np/{detected,labeled}/{bounding_box_train,query,
///   bounding_box_test}, Market-style names, new 767/700 protocol;
/// - the original <root>/cuhk03/cuhk03_release/cuhk-03.mat (MATLAB v7.3) with
///   <root>/cuhk03/cuhk03_new_protocol_config_{detected,labeled}.mat (new protocol) or its 20
///   classic 1,367/100 test splits. Images are converted once to
///   <root>/cuhk03/images_{detected,labeled}/{pair}_{pid:03d}_{view}_{img:02d}.png and reused.

#include <string>
#include <utility>
#include <vector>

#include "reid/data/datasets.h"

namespace reid::data {

/// CUHK03 splits as DatasetOptions::cuhk03 asks. Uses the NP folder release when present (new
/// protocol), otherwise the .mat release.
DatasetSplits cuhk03(const DatasetOptions& options);

/// One identity of cuhk-03.mat: camera pair (1-5), index within the pair (1-based), images.
struct CUHK03Identity {
  int pair = 0;
  int pid = 0;
  std::vector<std::string> paths;
};

/// Converts the `kind` ("detected" or "labeled") images of cuhk-03.mat to PNG files in
/// `image_dir`, unless a previous run completed that already, and lists them per identity.
/// Empty cells (identities with fewer than 10 images) are skipped. Throws reid::IOError.
std::vector<CUHK03Identity> extract_cuhk03_images(const std::string& mat_path, const std::string& kind,
                                                  const std::string& image_dir);

/// The 20 classic test splits of cuhk-03.mat: (camera pair, pid) pairs, 1-based.
std::vector<std::vector<std::pair<int, int>>> read_cuhk03_testsets(const std::string& mat_path);

/// True when LibReID was built with matio (needed by the .mat release).
bool have_matio();

}  // namespace reid::data
