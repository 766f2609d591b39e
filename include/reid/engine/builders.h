#pragma once
/// @file
/// The bridge from the typed Config to the library's Options structs and objects. This is the
/// only place (with config/ and the executables) that knows the Config layout.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reid/config/config.h"
#include "reid/data/datasets.h"
#include "reid/data/loader.h"
#include "reid/data/sampler.h"
#include "reid/data/transforms.h"
#include "reid/engine/distributed.h"
#include "reid/engine/inference.h"
#include "reid/engine/optim.h"
#include "reid/engine/registries.h"
#include "reid/engine/trainer.h"
#include "reid/eval/evaluator.h"
#include "reid/losses/loss_set.h"
#include "reid/models/model.h"

namespace reid::engine {

/// Checks every registry-backed name of `config` (model.name, loss.names, data.sources,
/// data.targets) against `registries`, before anything is loaded or written: an unknown name is a
/// ConfigError on its key, listing the registered names (with "did you mean").
void check_names(const Config& config, const Registries& registries, bool training);

/// Dataset options (root, combine_all, CUHK03, custom, synthetic).
data::DatasetOptions dataset_options(const Config& config);

/// Training (`train` = true: with the configured augmentations) or test transform.
data::TransformOptions transform_options(const Config& config, bool train);

/// Model options for `num_classes` identities (0: feature extractor only) and, with model.sie,
/// the `cameras` of its camera embedding.
models::ModelOptions model_options(const Config& config, int64_t num_classes, int64_t cameras = 0);

/// Floating-point type of parameters and activations (solver.precision).
torch::ScalarType model_dtype(const Config& config);

/// Builds the configured network (registry `models`), loads model.pretrained if set, and
/// returns it on `device` in model_dtype(). Unknown names are a ConfigError on model.name.
/// `cameras`: the camera count of the SIE embedding when model.sie is on (the training set's:
/// largest camid + 1), ignored otherwise. `video`: the network on clips of tracklets, its
/// per-frame features pooled over time (model.temporal_pooling; models/temporal.h).
models::ReidModel build_model(const Config& config, int64_t num_classes, const torch::Device& device,
                              const models::ModelRegistry& models = models::builtin_models(), int64_t cameras = 0,
                              bool video = false);

/// Loss-set options for a model with `num_classes` identities and `feature_dim`-wide global
/// features, or the named `embeddings` of a multi-branch model (ReidModelImpl::embedding_dims()).
losses::LossSetOptions loss_options(const Config& config, int64_t num_classes, int64_t feature_dim,
                                    const std::vector<models::NamedWidth>& embeddings = {});

/// Optimiser options of the model (solver section).
OptimizerOptions optimizer_options(const Config& config);

/// Learning-rate schedule (solver section).
ScheduleOptions schedule_options(const Config& config);

/// The loop's options (epochs, schedule, freeze-then-open, clipping, AMP, periods, seed).
TrainerOptions trainer_options(const Config& config);

/// The loss terms' own optimisers (LossTermImpl::make_optimizer(): the center loss's SGD, its
/// gradient rescaled by 1 / weight as BoT does), each named "<term>_optimizer" in checkpoints;
/// empty when no term has one.
std::vector<AuxiliaryOptimizer> auxiliary_optimizers(losses::LossSetImpl& loss);

/// Retrieval options (metric, normalisation, expansion, re-ranking, ROC, max rank) for `dataset`.
eval::RetrievalOptions retrieval_options(const Config& config, const std::string& dataset);

/// Evaluation options (test section: extraction, retrieval, outputs) on `device`.
EvaluationOptions evaluation_options(const Config& config, const torch::Device& device);

/// cuDNN autotuning (solver.cudnn_benchmark) and deterministic algorithms (solver.deterministic)
/// for training on `device` (process-wide LibTorch settings; nothing on the CPU).
void configure_backends(const Config& config, const torch::Device& device);

/// data.workers, with -1 resolved for the machine and device (see the key's comment).
int loader_workers(const Config& config, bool cuda);

/// Loader options (workers, prefetch, pinned memory on CUDA, skipping bad images).
data::LoaderOptions loader_options(const Config& config, bool cuda);

/// The training sampler over `records`, for a job of `world_size` processes. Throws ConfigError
/// (data.batch_size) when a batch would give a process fewer than 2 images (batch norm cannot
/// train on one): a short last batch (random sampler without drop_last) included.
std::unique_ptr<data::Sampler> build_sampler(const Config& config, const data::RecordList& records, int world_size = 1);

/// The job options: `launcher` (from the launcher variables) with the config's backend and
/// timeout; a single process when `launcher` is empty.
DistributedOptions distributed_options(const Config& config, const std::optional<DistributedOptions>& launcher);

/// This rank's device: config.device, with "cuda" meaning cuda:<local_rank> in a multi-process
/// job (an explicit cuda:N puts every rank on GPU N).
torch::Device rank_device(const Config& config, const DistributedOptions& job);

/// Throws ConfigError (data.batch_size) when the global batch gives each of `world_size` processes
/// fewer than 2 images, or cannot be split over them in whole identities (P x K samplers: P must
/// be a multiple of the world size) or in equal shares (random sampler).
void check_batch_split(const Config& config, int world_size);

/// Loads every dataset of data.sources (training) or data.targets (testing), with ConfigError
/// naming data.sources / data.targets for unknown names.
std::vector<data::DatasetSplits> load_datasets(const Config& config, bool sources,
                                               const data::DatasetRegistry& registry = data::builtin_datasets());

}  // namespace reid::engine
