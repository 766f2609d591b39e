#pragma once
/// @file
/// The training engine: one explicit loop (train -> epoch -> step) with evaluation and
/// checkpoints at configured periods, and the test and feature-extraction entry points the
/// executables call. Optional callbacks let user code watch a run without subclassing.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "reid/config/config.h"
#include "reid/data/records.h"
#include "reid/engine/recorder.h"
#include "reid/eval/evaluator.h"
#include "reid/models/model.h"

namespace reid::engine {

/// Optional observers of a training run.
struct TrainCallbacks {
  std::function<void(const IterationStats&)> on_iteration;
  std::function<void(const EpochStats&)> on_epoch;
  std::function<void(int64_t epoch, const std::string& dataset, const eval::EvalResult&)> on_evaluation;
};

/// What a training run did.
struct TrainResult {
  /// Epochs completed (including those of an earlier, resumed run).
  int64_t epochs = 0;
  /// True when a signal stopped the run (a checkpoint was written).
  bool interrupted = false;
  /// Best value of solver.best_metric and its epoch (1-based); -1 / 0 without evaluation.
  double best_metric = -1.0;
  int64_t best_epoch = 0;
  /// Results of the last evaluation, by dataset.
  std::map<std::string, eval::EvalResult> results;
  /// Files written: the resumable checkpoint and the final weights (a state dict).
  std::string checkpoint;
  std::string final_weights;
  /// Training time (without evaluation) and throughput of the whole run, summed over the
  /// processes of a resumed run.
  double train_seconds = 0.0;
  double images_per_second = 0.0;
};

/// Trains as `config` says, writing everything under config.output_dir. `resume` continues from
/// <output_dir>/checkpoints/last.ckpt so that the final weights equal an uninterrupted run's.
/// A non-finite loss stops training with a reid::Error naming the iteration (the last good
/// checkpoint is kept); a SIGINT/SIGTERM (see install_signal_handlers()) ends the current step,
/// writes a checkpoint and returns with `interrupted` set.
TrainResult train(const Config& config, bool resume, const TrainCallbacks& callbacks = {});

/// Evaluates the weights config.test.weights (default: <output_dir>/model_best.pt, then
/// model_final.pt) on every data.targets dataset: flip TTA, re-ranking, ranked-list PNGs and
/// features as .npy as config.test asks. Returns the results by dataset.
std::map<std::string, eval::EvalResult> test(const Config& config);

/// Features of `records` with the configured model and `weights`, written as
/// <output_dir>/<name>_{features,pids,camids,paths}.npy. Returns the set.
eval::FeatureSet extract(const Config& config, const std::string& weights, const data::RecordList& records,
                         const std::string& output_dir, const std::string& name);

/// Evaluates `model` on `targets` (query vs gallery of each). `output_dir` receives features
/// and ranked lists when config.test asks for them (empty: never).
std::map<std::string, eval::EvalResult> evaluate_targets(models::ReidModelImpl& model, const Config& config,
                                                         const std::vector<data::DatasetSplits>& targets,
                                                         const std::string& output_dir = "");

/// Builds the configured model for inference from a weights file: the number of classes is read
/// from the file's classifier, so the weights load completely.
models::ReidModel load_model_for_inference(const Config& config, const std::string& weights);

/// Makes SIGINT and SIGTERM request a clean stop (a second signal kills the process as usual).
void install_signal_handlers();
/// Asks a running train() to stop after its current step (what the signal handler does).
void request_stop();
/// True once a stop was requested.
bool stop_requested();
/// Clears a stop request (for library users running several trainings in one process).
void clear_stop_request();

}  // namespace reid::engine
