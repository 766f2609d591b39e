#pragma once
/// @file
/// What a training run leaves behind besides weights: metrics.jsonl (every logged iteration,
/// epoch and evaluation), metrics.csv (one row per epoch), TensorBoard scalars under tb/, and
/// training_curve.png. A resumed run appends to the same files.

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "reid/eval/metrics.h"
#include "reid/io/tensorboard.h"

namespace reid::engine {

/// Numbers of one logged training iteration.
struct IterationStats {
  int64_t epoch = 0;  ///< 1-based
  int64_t iteration = 0;  ///< global step
  int64_t batch = 0;  ///< 1-based, within the epoch
  int64_t batches = 0;  ///< in the epoch
  double lr = 0.0;
  double loss = 0.0;
  std::vector<std::pair<std::string, double>> terms;  ///< loss terms (and accuracy etc.)
  double images_per_second = 0.0;
  double data_fraction = 0.0;  ///< share of time spent waiting for data
  double eta_seconds = 0.0;
};

/// Averages over one epoch.
struct EpochStats {
  int64_t epoch = 0;  ///< 1-based
  double lr = 0.0;
  double loss = 0.0;
  std::vector<std::pair<std::string, double>> terms;
  double images_per_second = 0.0;
  double seconds = 0.0;
};

/// Writes the run's metrics files.
class Recorder {
 public:
  /// `targets` name the evaluated datasets (CSV columns); `tensorboard` enables tb/.
  Recorder(const std::string& output_dir, std::vector<std::string> targets, bool tensorboard);
  void iteration(const IterationStats& stats);
  /// Records the epoch (the CSV row is written when the next epoch starts or on flush(), so that
  /// the epoch's evaluation can join it).
  void epoch(const EpochStats& stats);
  void evaluation(int64_t epoch, const std::string& dataset, const eval::EvalResult& result);
  /// Writes the pending CSV row and redraws training_curve.png.
  void flush();

 private:
  void write_csv_row();
  void draw_curve() const;
  std::string dir_;
  std::vector<std::string> targets_;
  std::unique_ptr<io::EventWriter> tensorboard_;
  std::vector<std::string> term_names_;
  bool pending_ = false;
  EpochStats last_epoch_;
  std::map<std::string, std::pair<double, double>> last_eval_;  // dataset -> (rank1, mAP) of last_epoch_
  std::map<std::string, double> last_minp_;
  // For the curve: (epoch, loss) and (epoch, rank-1, mAP) of the first target.
  std::vector<std::pair<double, double>> loss_curve_;
  std::vector<std::tuple<double, double, double>> eval_curve_;
};

}  // namespace reid::engine
