#pragma once
/// @file
/// Each config section's conversion to the Options struct of the library part it configures:
/// one function per section, next to the Config it reads, so that the programs, the training
/// engine and the deployment code build their objects from the same values. The training-only
/// sections (solver, sampler, distributed) are converted in engine/builders.h.

#include <string>
#include <vector>

#include <torch/types.h>

#include "reid/config/config.h"
#include "reid/data/datasets.h"
#include "reid/data/loader.h"
#include "reid/data/transforms.h"
#include "reid/eval/evaluator.h"
#include "reid/losses/loss_set.h"
#include "reid/models/model.h"

namespace reid::config {

/// Dataset options (root, combine_all, CUHK03, custom, synthetic, video splits).
data::DatasetOptions dataset_options(const Config& config);

/// Training (`train` = true: with the configured augmentations) or test transform.
data::TransformOptions transform_options(const Config& config, bool train);

/// Model options for `num_classes` identities (0: feature extractor only) and, with model.sie,
/// the `cameras` of its camera embedding.
models::ModelOptions model_options(const Config& config, int64_t num_classes, int64_t cameras = 0);

/// Floating-point type of parameters and activations (solver.precision).
torch::ScalarType model_dtype(const Config& config);

/// The autocast type of mixed precision on CUDA (solver.amp_dtype: bfloat16 or float16).
torch::ScalarType amp_dtype(const Config& config);

/// Loss-set options for a model with `num_classes` identities and `feature_dim`-wide global
/// features, or the named `embeddings` of a multi-branch model (ReidModelImpl::embedding_dims()).
losses::LossSetOptions loss_options(const Config& config, int64_t num_classes, int64_t feature_dim,
                                    const std::vector<models::NamedWidth>& embeddings = {});

/// Retrieval options (metric, normalisation, expansion, re-ranking, ROC, max rank) for `dataset`.
eval::RetrievalOptions retrieval_options(const Config& config, const std::string& dataset);

/// data.workers, with -1 resolved for the machine and device (see the key's comment).
int loader_workers(const Config& config, bool cuda);

/// Loader options (workers, prefetch, pinned memory on CUDA, skipping bad images).
data::LoaderOptions loader_options(const Config& config, bool cuda);

}  // namespace reid::config
