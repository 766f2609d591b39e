#pragma once
/// @file
/// Resumable training checkpoints: model, optimiser(s), loss parameters (center loss), sampler
/// and random-number state, epoch/iteration and best metric. Written to a temporary file and
/// renamed, so a crash never leaves a torn checkpoint.

#include <cstdint>
#include <string>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

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
};

/// The objects a checkpoint covers. `loss` and `center_optimizer` may be null.
struct Trainables {
  torch::nn::Module* model = nullptr;
  torch::optim::Optimizer* optimizer = nullptr;
  torch::nn::Module* loss = nullptr;
  torch::optim::Optimizer* center_optimizer = nullptr;
};

/// Writes a checkpoint (also the CPU random-number state). Throws reid::IOError.
void save_checkpoint(const std::string& path, const TrainingState& state, const Trainables& objects);

/// Restores `objects` and the CPU random-number state from a checkpoint and returns the state.
/// Throws reid::IOError naming the file when it is missing, corrupt or does not fit the model.
TrainingState load_checkpoint(const std::string& path, const Trainables& objects);

}  // namespace reid::engine
