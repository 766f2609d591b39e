#pragma once
/// @file
/// The built-in training hooks: progress logging and metrics files, periodic evaluation with
/// the best model kept, and checkpoints. app::train() installs them in that order.

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "reid/data/records.h"
#include "reid/engine/evaluation.h"
#include "reid/engine/recorder.h"
#include "reid/engine/trainer.h"

namespace reid::engine {

/// A hook made of functions: observers of the logged means and the evaluations (main rank),
/// for a caller that needs no state of its own. Each one is optional.
struct TrainCallbacks : TrainHook {
  std::function<void(const IterationStats&)> on_iteration;
  std::function<void(const EpochStats&)> on_epoch;
  std::function<void(int64_t epoch, const std::string& dataset, const eval::EvalResult&)> on_evaluation;

  void iteration_logged(Trainer&, const IterationStats& stats) override {
    if (on_iteration) on_iteration(stats);
  }
  void epoch_logged(Trainer&, const EpochStats& stats) override {
    if (on_epoch) on_epoch(stats);
  }
  void evaluated(Trainer&, int64_t epoch, const std::string& dataset, const eval::EvalResult& result) override {
    if (on_evaluation) on_evaluation(epoch, dataset, result);
  }
};

/// Every log_period steps and at the end of each epoch: averages the meters over ranks, logs a
/// progress line and writes metrics.jsonl / metrics.csv / TensorBoard (main rank: `recorder`;
/// null on the other ranks). Each epoch it also reports images the loader skipped as unreadable
/// (data.skip_bad_images) and logs each loss term's warning about the epoch
/// (LossTermImpl::epoch_warning(), e.g. a collapsed triplet embedding) the first time it appears.
/// The means go to every hook (Trainer::report(): TrainHook::iteration_logged(), epoch_logged()).
class LoggingHook : public TrainHook {
 public:
  explicit LoggingHook(std::shared_ptr<Recorder> recorder);
  void before_train(Trainer& trainer) override;
  void before_epoch(Trainer& trainer) override;
  void after_step(Trainer& trainer) override;
  void after_epoch(Trainer& trainer) override;
  void after_train(Trainer& trainer) override;

 private:
  std::shared_ptr<Recorder> recorder_;
  std::set<std::string> warned_;  // terms whose warning was logged
  int64_t skipped_ = 0;
  double window_start_ = 0.0, data_wait_ = 0.0, comm_wait_ = 0.0, epoch_data_wait_ = 0.0, epoch_comm_wait_ = 0.0;
  int64_t window_images_ = 0, last_images_ = 0;
};

/// Writes <output_dir>/checkpoints/last.ckpt every `period` epochs (0: only at the end), at the
/// last epoch together with model_final.pt, when a stop request interrupts training, and when an
/// error stops it (see TrainHook::on_failure), so that --resume continues from the last good point.
class CheckpointHook : public TrainHook {
 public:
  CheckpointHook(std::string output_dir, int64_t period);
  void after_epoch(Trainer& trainer) override;
  void after_train(Trainer& trainer) override;
  void on_failure(Trainer& trainer) override;
  const std::string& path() const { return path_; }
  /// The final weights' file (written after the last epoch).
  std::string final_weights() const;

 private:
  std::string output_dir_, path_;
  int64_t period_;
};

/// Options of EvaluationHook.
struct EvaluationHookOptions {
  /// Evaluate every N epochs (0: only after the last one).
  int64_t period = config::SolverConfig{}.eval_period;
  /// Metric selecting the best model (a name of `metrics`: rank1, map, minp or one of yours).
  std::string best_metric = config::SolverConfig{}.best_metric;
  eval::MetricRegistry metrics = eval::builtin_metrics();
  /// Where model_best.pt goes.
  std::string output_dir;
};

/// Evaluates on the test sets every `period` epochs and after the last one (feature extraction
/// sharded over ranks, metrics on the main rank), with every rank's batch-norm statistics
/// averaged, and keeps the best weights as model_best.pt. Each result goes to every hook
/// (Trainer::report(): TrainHook::evaluated()).
class EvaluationHook : public TrainHook {
 public:
  EvaluationHook(std::vector<data::DatasetSplits> targets, EvaluationOptions evaluation,
                 EvaluationHookOptions options, std::shared_ptr<Recorder> recorder);
  void after_epoch(Trainer& trainer) override;
  /// Results of the last evaluation, by dataset (main rank).
  const std::map<std::string, eval::EvalResult>& results() const { return results_; }

 private:
  std::vector<data::DatasetSplits> targets_;
  EvaluationOptions evaluation_;
  EvaluationHookOptions options_;
  std::shared_ptr<Recorder> recorder_;
  std::map<std::string, eval::EvalResult> results_;
};

}  // namespace reid::engine
