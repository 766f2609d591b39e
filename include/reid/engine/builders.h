#pragma once
/// @file
/// The bridge from the typed Config to the library's Options structs and objects. This is the
/// only place (with config/ and the executables) that knows the Config layout.

#include <memory>
#include <string>
#include <vector>

#include "reid/config/config.h"
#include "reid/data/datasets.h"
#include "reid/data/loader.h"
#include "reid/data/sampler.h"
#include "reid/data/transforms.h"
#include "reid/eval/evaluator.h"
#include "reid/losses/loss_set.h"
#include "reid/models/model.h"

namespace reid::engine {

/// Dataset options (root, combine_all, CUHK03, custom, synthetic).
data::DatasetOptions dataset_options(const Config& config);

/// Training (`train` = true: with the configured augmentations) or test transform.
data::TransformOptions transform_options(const Config& config, bool train);

/// Model options for `num_classes` identities (0: feature extractor only).
models::ModelOptions model_options(const Config& config, int64_t num_classes);

/// Builds the configured network (registry `models`), loads model.pretrained if set, and
/// returns it on `device`. Unknown names are a ConfigError on model.name.
models::ReidModel build_model(const Config& config, int64_t num_classes, const torch::Device& device,
                              const models::ModelRegistry& models = models::builtin_models());

/// Loss-set options for a model with `num_classes` identities and `feature_dim`-wide global features.
losses::LossSetOptions loss_options(const Config& config, int64_t num_classes, int64_t feature_dim);

/// Retrieval options (metric, normalisation, expansion, re-ranking, ROC, max rank).
eval::RetrievalOptions retrieval_options(const Config& config, const std::string& dataset);

/// Loader options (workers, prefetch, pinned memory on CUDA, skipping bad images).
data::LoaderOptions loader_options(const Config& config, bool cuda);

/// The training sampler over `records`.
std::unique_ptr<data::Sampler> build_sampler(const Config& config, const data::RecordList& records);

/// Loads every dataset of data.sources (training) or data.targets (testing), with ConfigError
/// naming data.sources / data.targets for unknown names.
std::vector<data::DatasetSplits> load_datasets(const Config& config, bool sources,
                                               const data::DatasetRegistry& registry = data::builtin_datasets());

}  // namespace reid::engine
