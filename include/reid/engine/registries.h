#pragma once
/// @file
/// The registries engine entry points look names up in. The built-ins by default; copy one,
/// add your own entries and pass it to engine::train() / test() / extract() to use them
/// (docs/adding_a_model.md).

#include "reid/data/datasets.h"
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
};

}  // namespace reid::engine
