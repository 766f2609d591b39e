#pragma once
/// @file
/// Running a trained model on test data: evaluation on a dataset's query/gallery split (feature
/// extraction sharded over the ranks of a data-parallel job), the reid-test and reid-extract
/// entry points, and loading a model for inference from a weights file.

#include <map>
#include <string>
#include <vector>

#include "reid/config/config.h"
#include "reid/data/records.h"
#include "reid/data/transforms.h"
#include "reid/engine/registries.h"
#include "reid/engine/distributed.h"
#include "reid/deploy/extract.h"
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
  std::vector<int> ranks = {1, 5, 10, 20};
  /// With an output folder: write features as .npy / ranked-list PNGs of this many worst queries.
  bool save_features = false;
  int visualize = 0;
  int visualize_topk = 10;
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

/// Builds the configured model for inference from a weights file: the number of classes is read
/// from the file's classifier, so the weights load completely.
models::ReidModel load_model_for_inference(const Config& config, const std::string& weights,
                                           const Registries& registries = {});

/// Evaluates the weights config.test.weights (default: <output_dir>/model_best.pt, then
/// model_final.pt) on every data.targets dataset: flip TTA, re-ranking, ranked-list PNGs and
/// features as .npy as config.test asks. Returns the results by dataset.
std::map<std::string, eval::EvalResult> test(const Config& config, const Registries& registries = {});

/// Features of `records` with the configured model and `weights`, written as
/// <output_dir>/<name>_{features,pids,camids,paths}.npy. Returns the set.
eval::FeatureSet extract(const Config& config, const std::string& weights, const data::RecordList& records,
                         const std::string& output_dir, const std::string& name,
                         const Registries& registries = {});

}  // namespace reid::engine
