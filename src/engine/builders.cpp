#include "reid/engine/builders.h"

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/data/tracklets.h"

namespace reid::engine {
void check_names(const Config& config, const Registries& registries, bool training) {
  auto check = [](const auto& registry, const std::string& key, const std::string& name) {
    if (!registry.contains(name)) throw ConfigError(key, registry.unknown_message(name));
  };
  auto check_list = [&](const auto& registry, const std::string& key, const std::vector<std::string>& names) {
    for (std::size_t i = 0; i < names.size(); ++i) check(registry, key + "[" + std::to_string(i) + "]", names[i]);
  };
  check(registries.models, "model.name", config.model.name);
  check_list(registries.datasets, "data.targets", config.data.targets);
  if (!training) return;
  check_list(registries.datasets, "data.sources", config.data.sources);
  check_list(registries.losses, "loss.names", config.loss.names);
  check(registries.samplers, "sampler.name", config.sampler.name);
  check(registries.optimizers, "solver.optimizer", config.solver.optimizer);
  check(registries.schedulers, "solver.scheduler", config.solver.scheduler);
  check(registries.metrics, "solver.best_metric", config.solver.best_metric);
}

OptimizerOptions optimizer_options(const Config& config) {
  const auto& s = config.solver;
  OptimizerOptions o;
  o.name = s.optimizer;
  o.lr = s.base_lr;
  o.weight_decay = s.weight_decay;
  o.no_decay_norm_bias = s.no_decay_norm_bias;
  o.bias_lr_factor = s.bias_lr_factor;
  o.momentum = s.momentum;
  o.nesterov = s.nesterov;
  o.beta1 = s.adam_beta1;
  o.beta2 = s.adam_beta2;
  return o;
}

ScheduleOptions schedule_options(const Config& config) {
  const auto& s = config.solver;
  ScheduleOptions o;
  o.name = s.scheduler;
  o.milestones = s.milestones;
  o.gamma = s.gamma;
  o.flat_epochs = s.flat_epochs;
  o.min_factor = s.min_lr / s.base_lr;
  o.warmup_epochs = s.warmup_epochs;
  o.warmup_factor = s.warmup_factor;
  o.max_epochs = s.max_epochs;
  return o;
}

TrainerOptions trainer_options(const Config& config) {
  const auto& s = config.solver;
  return TrainerOptions()
      .max_epochs(s.max_epochs)
      .schedule(schedule_options(config))
      .fixbase_epochs(s.fixbase_epochs)
      .open_layers(s.open_layers)
      .grad_clip(s.grad_clip)
      .amp(s.amp)
      .amp_dtype(config::amp_dtype(config))
      .dtype(config::model_dtype(config))
      .channels_last(s.channels_last)
      .log_period(s.log_period)
      .seed(static_cast<uint64_t>(config.seed))
      .bucket_mb(config.distributed.bucket_mb);
}

EvaluationOptions evaluation_options(const Config& config, const torch::Device& device) {
  const auto& t = config.test;
  EvaluationOptions o;
  o.transform = config::transform_options(config, false);
  o.extract.batch_size = t.batch_size;
  o.extract.workers = config::loader_workers(config, device.is_cuda());
  o.extract.flip = t.flip;
  o.extract.seq_len = config.data.seq_len;
  o.extract.sampling = data::parse_frame_sampling(config.data.test_sampling);
  o.extract.camera_ids = t.camera_ids;
  o.extract.device = device;
  o.extract.channels_last = config.solver.channels_last;
  o.extract.dtype = config::model_dtype(config);
  o.extract.max_image_pixels = config.data.max_image_pixels;
  o.retrieval = config::retrieval_options(config, "");
  if (config.data.cuhk03.classic_split) o.single_gallery_shot.push_back("cuhk03");
  o.ranks = t.ranks;
  o.save_features = t.save_features;
  o.visualize = t.visualize;
  o.visualize_topk = t.visualize_topk;
  return o;
}

DistributedOptions distributed_options(const Config& config, const std::optional<DistributedOptions>& launcher) {
  DistributedOptions o = launcher.value_or(DistributedOptions());
  o.backend = config.distributed.backend;
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(config.distributed.timeout) * 1000);
  return o;
}

torch::Device rank_device(const Config& config, const DistributedOptions& job) {
  if (config.device == "cuda" && job.world_size > 1) {
    const int count = static_cast<int>(torch::cuda::device_count());
    if (count == 0) return parse_device(config.device);  // names the problem
    return parse_device("cuda:" + std::to_string(job.local_rank % count));
  }
  return parse_device(config.device);
}

void check_batch_split(const Config& config, int world_size) {
  const int batch = config.data.batch_size;
  if (batch / std::max(world_size, 1) < 2)
    throw ConfigError("data.batch_size",
                      world_size > 1
                          ? "a global batch of " + std::to_string(batch) + " images gives each of " +
                                std::to_string(world_size) + " processes (--nproc-per-node / WORLD_SIZE) " +
                                std::to_string(batch / world_size) +
                                " image(s), and batch norm trains on 2 or more: use a batch of at least " +
                                std::to_string(2 * world_size) + " images, or fewer processes"
                          : "a batch of " + std::to_string(batch) +
                                " image cannot train a network with batch norm (it needs 2 or more images per batch)");
  if (world_size <= 1) return;
  const std::string processes = std::to_string(world_size) + " processes";
  if (config.sampler.name == "random") {
    if (batch % world_size != 0)
      throw ConfigError("data.batch_size", "the global batch of " + std::to_string(batch) +
                                               " images does not split evenly over " + processes +
                                               " (use a multiple of " + std::to_string(world_size) + ")");
    return;
  }
  const int k = config.sampler.num_instances, p = batch / k;
  if (p % world_size != 0)
    throw ConfigError("data.batch_size",
                      "the global batch of " + std::to_string(batch) + " images holds " + std::to_string(p) +
                          " identities x " + std::to_string(k) + " images (sampler.num_instances), and " +
                          std::to_string(p) + " identities do not split over " + processes +
                          " in whole identities (use a batch of " + std::to_string(world_size * k) +
                          " x n images)");
}

void configure_backends(const Config& config, const torch::Device& device) {
  if (!device.is_cuda()) return;
  const bool deterministic = config.solver.deterministic;
  // cuBLAS is deterministic only with a fixed workspace (CUDA's documented setting).
  if (deterministic) setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  auto& context = at::globalContext();
  context.setBenchmarkCuDNN(config.solver.cudnn_benchmark && !deterministic);
  context.setDeterministicCuDNN(deterministic);
  context.setDeterministicAlgorithms(deterministic, /*warn_only=*/false);
}

std::unique_ptr<data::Sampler> build_sampler(const Config& config, const data::RecordList& records, int world_size,
                                             const data::SamplerRegistry& registry) {
  check_batch_split(config, world_size);
  if (!registry.contains(config.sampler.name))
    throw ConfigError("sampler.name", registry.unknown_message(config.sampler.name));
  std::unique_ptr<data::Sampler> sampler;
  try {
    sampler = registry.create(config.sampler.name, records,
                              data::SamplerOptions{config.data.batch_size, config.sampler.num_instances,
                                                   config.sampler.drop_last, static_cast<uint64_t>(config.seed)});
  } catch (const ConfigError&) {
    throw;
  } catch (const Error& e) {
    throw ConfigError("data.batch_size", e.what());
  }
  // An epoch without a single batch would "train" nothing and report success.
  if (sampler->batches_in_epoch() == 0)
    throw ConfigError("data.batch_size",
                      "a batch of " + std::to_string(config.data.batch_size) + " images cannot be filled from the " +
                          std::to_string(records->size()) + " training images of " +
                          std::to_string(data::count_pids(*records)) + " identities with the " +
                          config.sampler.name + " sampler" +
                          (config.sampler.name == "random" ? std::string(config.sampler.drop_last ? " (drop_last)" : "")
                                                           : " (K = " + std::to_string(config.sampler.num_instances) +
                                                                 " images per identity)") +
                          ": use a smaller batch");
  // A short last batch (random sampler without drop_last) of fewer than 2 images per process
  // would stop training at the end of the first epoch with LibTorch's batch-norm error.
  const auto plan = sampler->plan(0);
  const int64_t world = std::max(world_size, 1);
  for (const auto& batch : plan)
    if (static_cast<int64_t>(batch.size()) / world < 2)
      throw ConfigError("data.batch_size",
                        "the last batch of each epoch holds the " + std::to_string(batch.size()) + " image(s) left of " +
                            std::to_string(records->size()) + " training images in batches of " +
                            std::to_string(config.data.batch_size) + ", " +
                            (world > 1 ? "fewer than 2 for each of " + std::to_string(world) + " processes"
                                       : std::string("fewer than the 2 batch norm trains on")) +
                            ": set sampler.drop_last: true, or choose another batch size");
  return sampler;
}

std::vector<data::DatasetSplits> load_datasets(const Config& config, bool sources, const data::DatasetRegistry& registry) {
  const auto& names = sources ? config.data.sources : config.data.targets;
  const char* key = sources ? "data.sources" : "data.targets";
  std::vector<data::DatasetSplits> out;
  const auto options = config::dataset_options(config);
  for (const auto& name : names) {
    if (!registry.contains(name)) throw ConfigError(key, registry.unknown_message(name));
    out.push_back(data::load_dataset(name, options, registry));
    data::check_not_empty(out.back(), sources, !sources);
    // Every image's header, before anything is trained or evaluated.
    data::check_dataset_images(out.back(), sources, !sources, config.data.max_image_pixels,
                               config.data.skip_bad_images);
    data::check_not_empty(out.back(), sources, !sources);
  }
  return out;
}

}  // namespace reid::engine
