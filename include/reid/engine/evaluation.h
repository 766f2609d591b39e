#pragma once
/// @file
/// Evaluating a model on test data during and after training: each target's query/gallery split,
/// its features extracted by deploy's one extraction path, sharded over the ranks of a
/// data-parallel job.

#include <map>
#include <string>
#include <vector>

#include "reid/config/config.h"
#include "reid/data/records.h"
#include "reid/data/transforms.h"
#include "reid/deploy/extract.h"
#include "reid/engine/distributed.h"
#include "reid/eval/evaluator.h"
#include "reid/models/model.h"

namespace reid::engine {

/// How to evaluate (built from the config's test section by evaluation_options()).
struct EvaluationOptions {
  /// Test transform (resize + normalise).
  data::TransformOptions transform;
  /// Batch size, loader threads, flip TTA, device, channels-last.
  deploy::ExtractOptions extract;
  /// Distance, normalisation, query expansion, re-ranking, CMC length, ROC.
  eval::RetrievalOptions retrieval;
  /// Datasets scored with the single-gallery-shot protocol (CUHK03 classic split).
  std::vector<std::string> single_gallery_shot;
  /// CMC ranks shown in the summary line.
  std::vector<int> ranks = config::TestConfig{}.ranks;
  /// With an output folder: write features as .npy / ranked-list PNGs of this many worst queries.
  bool save_features = config::TestConfig{}.save_features;
  int visualize = config::TestConfig{}.visualize;
  int visualize_topk = config::TestConfig{}.visualize_topk;
};

/// Test features of `records`, extracted in contiguous shards by the ranks of `dist` and
/// gathered (every rank gets the whole set). One process extracts everything.
eval::FeatureSet extract_features(models::ReidModelImpl& model, const data::RecordList& records,
                                  const data::Transform& transform, const deploy::ExtractOptions& options,
                                  Distributed& dist);

/// Evaluates `model` on every target's query vs gallery. Features are extracted by all ranks of
/// `dist` (null: this process alone); metrics, features and ranked lists (into `output_dir` when
/// not empty and the options ask for them) are computed by the main rank, which alone returns
/// results. Collective when `dist` is given.
std::map<std::string, eval::EvalResult> evaluate_targets(models::ReidModelImpl& model,
                                                         const std::vector<data::DatasetSplits>& targets,
                                                         const EvaluationOptions& options,
                                                         const std::string& output_dir = "",
                                                         Distributed* dist = nullptr);

}  // namespace reid::engine
