#pragma once
/// @file
/// The training loop: a `Trainer` owns train() -> run_epoch() -> run_step(); everything
/// periodic (logging, evaluation, checkpoints) is a `TrainHook` called before/after training,
/// epochs and steps, so adding one never touches the step. The Trainer knows no Config: it
/// takes typed options and components; `app::train(const Config&, ...)` (app/train.h)
/// builds them from a config.
///
/// Process topology is an engine::Distributed, a no-op in one process: the step always calls
/// the gradient reducer and the meters' collective averages, and one process runs exactly the
/// single-process computation.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include "reid/data/loader.h"
#include "reid/data/records.h"
#include "reid/data/sampler.h"
#include "reid/data/transforms.h"
#include "reid/engine/checkpoint.h"
#include "reid/config/config.h"
#include "reid/config/options.h"
#include "reid/engine/distributed.h"
#include "reid/engine/optim.h"
#include "reid/losses/loss_set.h"
#include "reid/models/model.h"

namespace reid::eval {
struct EvalResult;
}  // namespace reid::eval

namespace reid::engine {

class Trainer;
struct IterationStats;
struct EpochStats;

/// Code that runs at fixed points of training. Every rank runs every hook (hooks may call
/// collectives); only the main rank writes files.
class TrainHook {
 public:
  virtual ~TrainHook() = default;
  virtual void before_train(Trainer& trainer) {}
  virtual void before_epoch(Trainer& trainer) {}
  virtual void after_step(Trainer& trainer) {}
  virtual void after_epoch(Trainer& trainer) {}
  /// After the last epoch, or after a stop request (Trainer::interrupted()).
  virtual void after_train(Trainer& trainer) {}
  /// When training stopped on an error after at least one step, in a single-process run, with
  /// the trainer's state set to the last good point (the last finished epoch, or the last
  /// finished batch of the epoch in progress) so that a checkpoint written now resumes there.
  /// Not called after a non-finite loss (the state is not good) nor in a multi-process run (a
  /// collective with a failed peer would hang). Errors thrown here are logged, and the original
  /// error is the one that propagates.
  virtual void on_failure(Trainer& trainer) {}

  // What other hooks measured, as they report it (Trainer::report()), main rank only:
  /// The means of a log period (the LoggingHook, every log_period steps).
  virtual void iteration_logged(Trainer& trainer, const IterationStats& stats) {}
  /// The means of a finished epoch (the LoggingHook).
  virtual void epoch_logged(Trainer& trainer, const EpochStats& stats) {}
  /// An evaluation of the model after `epoch` (1-based) on the target set `dataset` (the
  /// EvaluationHook).
  virtual void evaluated(Trainer& trainer, int64_t epoch, const std::string& dataset, const eval::EvalResult& result) {}
};

/// Options of the loop itself.
struct TrainerOptions {
  /// Epochs to train.
  TORCH_ARG(int64_t, max_epochs) = config::SolverConfig{}.max_epochs;
  /// Learning-rate schedule (epoch-based).
  TORCH_ARG(ScheduleOptions, schedule);
  /// Where the schedule's name is looked up (the built-ins; copy it to add your own).
  TORCH_ARG(SchedulerRegistry, schedulers) = builtin_schedulers();
  /// Freeze-then-open: during the first fixbase_epochs only `open_layers` train.
  TORCH_ARG(int64_t, fixbase_epochs) = config::SolverConfig{}.fixbase_epochs;
  TORCH_ARG(std::vector<std::string>, open_layers) = config::SolverConfig{}.open_layers;
  /// Clip the global gradient norm (0: off).
  TORCH_ARG(double, grad_clip) = config::SolverConfig{}.grad_clip;
  /// Autocast on CUDA (ignored on CPU) to `amp_dtype`: bfloat16, or float16 with dynamic loss
  /// scaling.
  TORCH_ARG(bool, amp) = config::SolverConfig{}.amp;
  TORCH_ARG(torch::ScalarType, amp_dtype) = config::amp_dtype(config::Config{});
  /// Floating-point type of the model (images are converted to it).
  TORCH_ARG(torch::ScalarType, dtype) = config::model_dtype(config::Config{});
  /// Feed images channels-last (the model should be converted with models::to_channels_last).
  TORCH_ARG(bool, channels_last) = config::SolverConfig{}.channels_last;
  /// Steps between logged lines; also the period of the NaN / stop checks on CUDA, which read
  /// device values (on the CPU they run after every step).
  TORCH_ARG(int64_t, log_period) = config::SolverConfig{}.log_period;
  /// Seed of the epochs' augmentation streams.
  TORCH_ARG(uint64_t, seed) = static_cast<uint64_t>(config::Config{}.seed);
  /// Gradient bucket size of the data-parallel reducer (MB).
  TORCH_ARG(double, bucket_mb) = config::DistributedConfig{}.bucket_mb;
};

/// What the Trainer trains with.
struct TrainComponents {
  models::ReidModel model;
  losses::LossSet loss{nullptr};
  Optimizer optimizer;
  std::unique_ptr<data::Sampler> sampler;
  /// Training records and transform; the Trainer loads batches with its own DataLoader.
  data::RecordList records;
  data::TransformOptions transform;
  data::LoaderOptions loader;
};

/// Running means of the step's loss terms and statistics, kept on the device: a step adds
/// without reading anything back; take_window()/take_epoch() read once (one device-to-host copy
/// and, with several processes, one all-reduce: every rank must call them at the same steps).
class StepMeter {
 public:
  /// Adds one step's values ("loss", then the loss terms, then the statistics).
  void add(const losses::LossResult& result);
  /// Means since the previous take_window(), averaged over ranks; empty when no step was added.
  std::vector<std::pair<std::string, double>> take_window(Distributed& dist);
  /// Means over the epoch so far, averaged over ranks; clears the epoch.
  std::vector<std::pair<std::string, double>> take_epoch(Distributed& dist);

 private:
  std::vector<std::pair<std::string, double>> take(torch::Tensor& sum, int64_t& steps, Distributed& dist);
  std::vector<std::string> names_;
  torch::Tensor window_, epoch_;
  int64_t window_steps_ = 0, epoch_steps_ = 0;
};

/// The training loop.
class Trainer {
 public:
  /// `dist` must outlive the Trainer. In a multi-process job the components must be identical on
  /// every rank (same seed); the model is broadcast from rank 0 anyway.
  Trainer(TrainerOptions options, TrainComponents components, Distributed& dist);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Adds a hook; hooks run in the order they were added.
  void add_hook(std::shared_ptr<TrainHook> hook);
  /// Passes a hook's measurement to every hook (TrainHook::iteration_logged(), epoch_logged(),
  /// evaluated()), in their order. Called by the hook that measured, on the main rank.
  void report(const IterationStats& stats);
  void report(const EpochStats& stats);
  void report(int64_t epoch, const std::string& dataset, const eval::EvalResult& result);

  /// Continues from a checkpoint written by save_checkpoint(): weights, optimisers, sampler,
  /// random state and (with the same world size) every rank's own state. A different world
  /// size resumes too, with a warning saying what cannot be reproduced exactly.
  void resume(const std::string& path);

  /// Trains until max_epochs or a stop request (engine::request_stop, SIGINT/SIGTERM).
  /// A non-finite loss throws reid::Error naming the epoch, batch and iteration. Any other error
  /// after the first step calls the hooks' on_failure first (see TrainHook), then propagates.
  void train();

  /// Writes a checkpoint to `path` (collective: gathers every rank's state; rank 0 writes).
  /// Throws reid::Error, writing nothing, when a parameter or buffer is not finite.
  void save_checkpoint(const std::string& path);

  /// Runs `body` with every rank's batch-norm statistics replaced by their mean over ranks
  /// (what evaluation and saved weights use), then restores each rank's own statistics so that
  /// training continues exactly as if nothing had happened. Collective.
  template <class F>
  void with_consistent_buffers(F&& body) {
    auto saved = average_buffers_keep_local();
    try {
      body();
    } catch (...) {
      restore_buffers(saved);
      throw;
    }
    restore_buffers(saved);
  }

  // ---- what hooks read ----
  const TrainerOptions& options() const { return options_; }
  TrainingState& state() { return state_; }
  const TrainingState& state() const { return state_; }
  models::ReidModelImpl& model() { return *model_; }
  losses::LossSetImpl& loss() { return *loss_; }
  Distributed& dist() { return dist_; }
  Checkpointer& checkpointer() { return checkpointer_; }
  /// The training sampler (its plan() of any epoch) and the records its indices refer to.
  const data::Sampler& sampler() const { return *sampler_; }
  const data::RecordList& records() const { return records_; }
  StepMeter& meter() { return meter_; }
  /// 0-based epoch in progress (during after_epoch: the epoch just finished).
  int64_t epoch() const { return epoch_; }
  /// Batches of the current epoch done so far (1-based after a step) and in all.
  int64_t batch() const { return position_; }
  int64_t batches() const { return batches_; }
  /// True during after_epoch of the last epoch.
  bool last_epoch() const { return epoch_ + 1 == options_.max_epochs(); }
  /// True when a stop request ended training early.
  bool interrupted() const { return interrupted_; }
  /// Current learning rate of the model's first parameter group.
  double lr() const { return optimizer_.lr(); }
  /// Images this rank trained on in the current epoch / training seconds of the epoch so far.
  int64_t epoch_images() const { return epoch_images_; }
  double epoch_seconds() const;
  /// Images this rank's loader skipped as unreadable since training started.
  int64_t skipped_images() const { return loader_->skipped(); }
  /// Seconds spent waiting for batches and for gradient communication since the last call.
  std::pair<double, double> take_wait_seconds();
  /// Writes the checkpoint of this epoch again (after evaluation changed the best metric), when
  /// save_checkpoint() already wrote one during this epoch's after_epoch.
  void update_checkpoint();

 private:
  std::vector<std::pair<std::string, torch::Tensor>> average_buffers_keep_local();
  void restore_buffers(const std::vector<std::pair<std::string, torch::Tensor>>& saved);
  void begin_epoch();
  void run_epoch();
  void run_step(const data::Batch& batch);
  /// NaN and stop checks (collective); returns true to stop.
  bool control_point();
  std::vector<RankState> gather_rank_states();
  /// After an error in train(): the state of the last good point, then the hooks' on_failure.
  void keep_last_good_state(int64_t start_iteration);

  TrainerOptions options_;
  Distributed& dist_;
  models::ReidModel model_;
  losses::LossSet loss_;
  Optimizer optimizer_;
  std::unique_ptr<data::Sampler> sampler_;
  data::RecordList records_;
  std::unique_ptr<data::DataLoader> loader_;
  std::unique_ptr<GradientReducer> reducer_;
  std::vector<std::shared_ptr<TrainHook>> hooks_;
  Checkpointer checkpointer_;
  StepMeter meter_;
  TrainingState state_;
  struct Gate;
  std::unique_ptr<Gate> gate_;
  int64_t epoch_ = 0, position_ = 0, batches_ = 0, epoch_images_ = 0, control_period_ = 1;
  double epoch_start_ = 0.0, data_wait_ = 0.0;
  bool interrupted_ = false;
  bool epoch_finished_ = false;  // the epoch's steps are done (its after_epoch hooks may be running)
  bool not_finite_ = false;      // training stopped on a non-finite loss
  std::string checkpoint_path_;
  int64_t checkpoint_epoch_ = -1;
  double comm_wait_ = 0.0;
  torch::Tensor first_bad_;
  std::vector<torch::Tensor> trained_;  // every parameter the reducer averages
  bool amp_ = false;
  LossScaler scaler_{nullptr};  // iteration of the first non-finite loss since the last check, or -1
};

/// Makes SIGINT and SIGTERM request a clean stop (a second signal kills the process as usual).
void install_signal_handlers();
/// Asks a running Trainer to stop after its current step (what the signal handler does).
void request_stop();
/// True once a stop was requested.
bool stop_requested();
/// The signal that requested the stop (SIGINT, SIGTERM), or 0.
int stop_signal();
/// Clears a stop request (for library users running several trainings in one process).
void clear_stop_request();

}  // namespace reid::engine
