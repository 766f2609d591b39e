#pragma once
/// @file
/// The training sections of the Config (solver, sampler, distributed, test during training)
/// converted to the engine's Options and objects. The sections the rest of the library reads are
/// converted next to the Config (config/options.h).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reid/config/config.h"
#include "reid/config/options.h"
#include "reid/data/datasets.h"
#include "reid/data/loader.h"
#include "reid/data/sampler.h"
#include "reid/data/transforms.h"
#include "reid/engine/distributed.h"
#include "reid/engine/evaluation.h"
#include "reid/engine/optim.h"
#include "reid/engine/registries.h"
#include "reid/engine/trainer.h"
#include "reid/eval/evaluator.h"
#include "reid/losses/loss_set.h"
#include "reid/models/model.h"

namespace reid::engine {

/// Checks every registry-backed name of `config` (model.name, data.targets and, for training,
/// data.sources, loss.names, sampler.name, solver.optimizer, solver.scheduler) against `registries`, before anything is loaded or written: an unknown name is a
/// ConfigError on its key, listing the registered names (with "did you mean").
void check_names(const Config& config, const Registries& registries, bool training);

/// Optimiser options of the model (solver section).
OptimizerOptions optimizer_options(const Config& config);

/// Learning-rate schedule (solver section).
ScheduleOptions schedule_options(const Config& config);

/// The loop's options (epochs, schedule, freeze-then-open, clipping, AMP, periods, seed).
TrainerOptions trainer_options(const Config& config);

/// Evaluation options (test section: extraction, retrieval, outputs) on `device`.
EvaluationOptions evaluation_options(const Config& config, const torch::Device& device);

/// cuDNN autotuning (solver.cudnn_benchmark) and deterministic algorithms (solver.deterministic)
/// for training on `device` (process-wide LibTorch settings; nothing on the CPU).
void configure_backends(const Config& config, const torch::Device& device);

/// The training sampler over `records`, for a job of `world_size` processes. Throws ConfigError
/// (data.batch_size) when a batch would give a process fewer than 2 images (batch norm cannot
/// train on one): a short last batch (random sampler without drop_last) included.
/// The sampler is looked up in `registry`.
std::unique_ptr<data::Sampler> build_sampler(const Config& config, const data::RecordList& records, int world_size = 1,
                                             const data::SamplerRegistry& registry = data::builtin_samplers());

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
