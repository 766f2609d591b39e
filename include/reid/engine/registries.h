#pragma once
/// @file
/// The registries a run from a config looks names up in. The built-ins by default; copy one, add
/// your own entries and pass it to app::train() / test() / extract() to use them
/// (docs/adding_a_model.md). Deployment takes the model registry alone.

#include "reid/data/datasets.h"
#include "reid/data/sampler.h"
#include "reid/engine/optim.h"
#include "reid/eval/metrics.h"
#include "reid/losses/term.h"
#include "reid/models/model.h"

namespace reid::engine {

/// Name -> builder tables for the configurable kinds.
struct Registries {
  /// Networks (model.name).
  models::ModelRegistry models = models::builtin_models();
  /// Dataset parsers (data.sources, data.targets).
  data::DatasetRegistry datasets = data::builtin_datasets();
  /// Loss terms (loss.names).
  losses::LossRegistry losses = losses::builtin_losses();
  /// Training samplers (sampler.name).
  data::SamplerRegistry samplers = data::builtin_samplers();
  /// Optimisers (solver.optimizer) and learning-rate schedules (solver.scheduler).
  OptimizerRegistry optimizers = builtin_optimizers();
  SchedulerRegistry schedulers = builtin_schedulers();
  /// Figures the best model is selected by (solver.best_metric).
  eval::MetricRegistry metrics = eval::builtin_metrics();
};

}  // namespace reid::engine
