#pragma once
/// @file
/// Resumable training checkpoints. What a run keeps between steps (model, optimisers, loss
/// terms with parameters, ...) is registered by name with a Checkpointer, as torchreid's
/// `register_model` does; the checkpoint then holds each under its name, plus where training
/// stands (TrainingState), the CPU random-number state and, in a data-parallel run, every
/// rank's own random-number state and batch-norm statistics. Written to a temporary file and
/// renamed, so a crash never leaves a torn checkpoint.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include "reid/data/sampler.h"

namespace reid::engine {

/// Where training stands.
struct TrainingState {
  /// Epoch in progress (0-based); with the sampler position it says where to continue.
  int64_t epoch = 0;
  /// Optimisation steps taken so far.
  int64_t iteration = 0;
  data::SamplerState sampler;
  /// Best value of the selection metric so far (-1: none yet) and its epoch (1-based).
  double best_metric = -1.0;
  int64_t best_epoch = 0;
  /// Training time (seconds, evaluation excluded) and images trained on so far, over every
  /// process of a resumed run, so that its final throughput covers the whole run.
  double train_seconds = 0.0;
  int64_t images = 0;
  /// The resolved config the run was started with (YAML).
  std::string config_yaml;
  /// Processes of the run that wrote the checkpoint (1: a single process).
  int64_t world_size = 1;
  /// Identities and images of the training set (0: not recorded), to name a changed dataset.
  int64_t num_classes = 0;
  int64_t num_images = 0;
};

/// What one rank of a data-parallel run keeps for itself: its CPU random-number state and its
/// own batch-norm running statistics (ranks' statistics differ without synchronized BN).
struct RankState {
  torch::Tensor rng;
  std::map<std::string, torch::Tensor> buffers;
};

/// Saves and restores the objects registered with it under their names.
class Checkpointer {
 public:
  /// Registers a module (parameters and buffers) under `name` ("model", "loss", ...).
  void add(const std::string& name, torch::nn::Module& module);
  /// Registers an optimiser (its per-parameter state) under `name`.
  void add(const std::string& name, torch::optim::Optimizer& optimizer);
  /// The registered names, in registration order.
  std::vector<std::string> names() const;

  /// Writes a checkpoint: `state`, the CPU random-number state, every registered object and,
  /// when given, each rank's RankState. Throws reid::IOError naming the file; the previous
  /// checkpoint is kept and no temporary is left.
  void save(const std::string& path, const TrainingState& state, const std::vector<RankState>& ranks = {}) const;

  /// Restores every registered object and the CPU random-number state; returns the state and,
  /// through `ranks`, the per-rank states the checkpoint holds (empty for a single process).
  /// Throws reid::IOError naming the file when it is missing, corrupt, or lacks a registered
  /// object or does not fit it.
  TrainingState load(const std::string& path, std::vector<RankState>* ranks = nullptr) const;

 private:
  struct Entry {
    std::string name;
    std::function<void(torch::serialize::OutputArchive&)> save;
    std::function<void(torch::serialize::InputArchive&)> load;
  };
  std::vector<Entry> entries_;
};

/// Reads only the TrainingState of a checkpoint (no objects), e.g. to compare its config with
/// the new one before resuming. Throws reid::IOError naming the file.
TrainingState read_training_state(const std::string& path);

}  // namespace reid::engine
