#pragma once
/// @file
/// Training from a config: app::train() builds the datasets, model, losses, optimisers,
/// sampler and hooks from a Config (through builders.cpp), joins the data-parallel job the
/// launcher variables describe, and runs a Trainer.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reid/config/config.h"
#include "reid/config/loader.h"
#include "reid/engine/builders.h"
#include "reid/engine/distributed.h"
#include "reid/engine/hooks.h"
#include "reid/eval/metrics.h"

namespace reid::app {

/// What a training run did.
struct TrainResult {
  /// Epochs completed (including those of an earlier, resumed run).
  int64_t epochs = 0;
  /// True when a signal stopped the run (a checkpoint was written).
  bool interrupted = false;
  /// Best value of solver.best_metric and its epoch (1-based); -1 / 0 without evaluation.
  double best_metric = -1.0;
  int64_t best_epoch = 0;
  /// Results of the last evaluation, by dataset (main rank).
  std::map<std::string, eval::EvalResult> results;
  /// Files written: the resumable checkpoint and the final weights (a state dict).
  std::string checkpoint;
  std::string final_weights;
  /// Training time (without evaluation) and throughput of the whole run (all ranks), summed over
  /// the processes of a resumed run.
  double train_seconds = 0.0;
  double images_per_second = 0.0;
  /// This process's rank and the job's size.
  int rank = 0;
  int world_size = 1;
};

/// How to run a training besides the config.
struct TrainSetup {
  /// Continue from <output_dir>/checkpoints/last.ckpt.
  bool resume = false;
  /// Start afresh in an output folder that already holds a run, removing its checkpoint, weights
  /// and metrics first (otherwise such a folder is refused).
  bool overwrite = false;
  /// Observers of the logged means and the evaluations (main rank): a hook made of functions,
  /// added before `hooks`.
  engine::TrainCallbacks callbacks;
  /// Hooks of the program's own, added after the built-in ones (logging, checkpoints,
  /// evaluation), so that they see each epoch's checkpoint and evaluation. They run on every
  /// rank of a data-parallel job (Trainer::dist().is_main() tells the one that writes).
  std::vector<std::shared_ptr<engine::TrainHook>> hooks;
  /// Where the config's names are looked up: models, datasets, loss terms, samplers, optimisers,
  /// schedules (the built-ins by default; add your own and name them in the YAML).
  engine::Registries registries;
  /// The job this process belongs to (distributed_options_from_environment()); nullopt: one
  /// process. Backend and timeout come from the config's `distributed` section.
  std::optional<engine::DistributedOptions> distributed;
};

/// Trains as `config` says, writing everything under config.output_dir (main rank). With
/// `setup.resume` it continues from the checkpoint so that the final weights equal an
/// uninterrupted run's. A non-finite loss stops training with a reid::Error naming the
/// iteration (the last good checkpoint is kept); a SIGINT/SIGTERM (install_signal_handlers())
/// ends the current step, writes a checkpoint and returns with `interrupted` set.
TrainResult train(const Config& config, const TrainSetup& setup);

/// Refuses (ConfigError on output_dir, naming the folder and what it holds) to start a new run in
/// a folder that already holds one (a checkpoint, weights or metrics) unless `overwrite`, which
/// removes the files a run writes first (weights, metrics, the curve, checkpoints/last.ckpt, its
/// TensorBoard event files) and nothing else: other files in checkpoints/ or tb/ stay, with a
/// warning naming them; with `resume` the folder must hold a checkpoint. Writes nothing
/// otherwise: call it before anything is written into the folder (train() does, and so does
/// reid-train before it opens its log).
void prepare_run_folder(const std::string& output_dir, bool resume, bool overwrite);

/// Checks that `config` can continue the checkpoint in its output folder before anything is
/// built or written: a ConfigError names every key whose change the saved state cannot survive
/// (network, training data, sampler, loss terms, optimiser, precision, seed) with both values.
/// Returns the other differences (learning rate, epochs, periods, ...), which are allowed.
std::vector<config::KeyDifference> check_resume(const Config& config);

/// train() in one process with the built-in registries.
TrainResult train(const Config& config, bool resume, const engine::TrainCallbacks& callbacks = {});

}  // namespace reid::app
