#pragma once
/// @file
/// Test features of a list of image records: the evaluation's and reid-extract's path (files on
/// disk through the threaded loader, the eager model). Crops already in memory go through
/// deploy/embedder.h instead.

#include <functional>
#include <vector>

#include <torch/types.h>

#include "reid/config/config.h"
#include "reid/data/image_io.h"
#include "reid/data/records.h"
#include "reid/data/tracklets.h"
#include "reid/data/transforms.h"
#include "reid/eval/evaluator.h"
#include "reid/models/model.h"

namespace reid::deploy {

/// Options of extract_features().
struct ExtractOptions {
  int64_t batch_size = config::TestConfig{}.batch_size;
  int workers = data::LoaderOptions{}.workers;
  /// Average the features of each image and its mirror image.
  bool flip = config::TestConfig{}.flip;
  /// Give the model each record's camera id (models with a camera embedding: SIE); false:
  /// camera-agnostic features.
  bool camera_ids = config::TestConfig{}.camera_ids;
  torch::Device device = torch::kCPU;
  /// Feed images in channels-last layout (matching a channels-last model avoids layout changes).
  bool channels_last = false;
  /// Floating-point type of the model's parameters (images are converted to it).
  torch::ScalarType dtype = torch::kFloat;
  /// Largest image decoded (width x height).
  int64_t max_image_pixels = data::kDefaultMaxImagePixels;
  /// Tracklets: frames per clip, and which (kEvenly: one clip; kAll: every frame in clips whose
  /// features are averaged, the dense protocol).
  int64_t seq_len = data::LoaderOptions{}.seq_len;
  data::FrameSampling sampling = data::parse_frame_sampling(config::DataConfig{}.test_sampling);
};

/// The test features of a batch of `images`: forward(images), averaged with the features of the
/// images mirrored left-right when `flip` (two passes). The one place flip averaging is done:
/// extraction and the Embedder both call it.
torch::Tensor flip_averaged(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                            const torch::Tensor& images, bool flip);

/// The mean of the rows of `features` that belong to each of `groups` owners (`owner[i]`: the
/// owner of row i, in [0, groups)): a tracklet's feature from its clips' or frames'.
torch::Tensor mean_by_owner(const torch::Tensor& features, const std::vector<int64_t>& owner, int64_t groups);

/// A FeatureSet of `features` ([N, D], row i of records[i]) with the records' pids, camids and
/// paths.
eval::FeatureSet labelled_features(torch::Tensor features, const std::vector<data::ImageRecord>& records);

/// Test features of `records`: the model runs in eval mode without gradients; images go through
/// `transform` (resize + normalise); batches are loaded by the threaded loader. Tracklet records
/// give one feature per tracklet (a clip model's input [N, seq_len, 3, H, W]).
eval::FeatureSet extract_features(models::ReidModelImpl& model, const data::RecordList& records,
                            const data::Transform& transform, const ExtractOptions& options = {});

}  // namespace reid::deploy
