#include "reid/engine/builders.h"

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/data/tracklets.h"
#include "reid/models/temporal.h"
#include "reid/models/weights.h"

namespace reid::engine {
namespace {

std::array<float, 3> rgb(const std::vector<double>& v) {
  return {static_cast<float>(v.at(0)), static_cast<float>(v.at(1)), static_cast<float>(v.at(2))};
}

}  // namespace

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
}

data::DatasetOptions dataset_options(const Config& config) {
  const auto& d = config.data;
  data::DatasetOptions o;
  o.root = d.root;
  o.combine_all = d.combine_all;
  o.cuhk03 = {d.cuhk03.labeled, d.cuhk03.classic_split, d.cuhk03.split_id};
  o.custom = {d.custom.image_root, d.custom.train_list, d.custom.query_list, d.custom.gallery_list};
  const auto& s = d.synthetic;
  o.synthetic = {s.train_ids, s.test_ids,  s.cameras, s.images_per_camera, s.height, s.width,
                 s.seed,      s.tracklets_per_camera, s.frames};
  const auto& v = d.video;
  o.video = {v.split_id, v.num_splits, v.split_seed, v.splits_file, v.min_frames};
  return o;
}

data::TransformOptions transform_options(const Config& config, bool train) {
  const auto& d = config.data;
  data::TransformOptions o;
  o.height = d.height;
  o.width = d.width;
  o.mean = rgb(d.mean);
  o.std = rgb(d.std);
  if (!train) return o;
  for (const auto& name : d.transforms) o.augments.push_back(data::parse_augment(name));
  o.flip_prob = d.flip_prob;
  o.pad = d.pad;
  o.color_jitter = {d.color_jitter.prob, d.color_jitter.brightness, d.color_jitter.contrast, d.color_jitter.saturation,
                    d.color_jitter.hue};
  o.erasing.prob = d.erasing.prob;
  o.erasing.min_area = d.erasing.min_area;
  o.erasing.max_area = d.erasing.max_area;
  o.erasing.min_aspect = d.erasing.min_aspect;
  o.erasing.value = rgb(d.erasing.value);
  return o;
}

models::ModelOptions model_options(const Config& config, int64_t num_classes, int64_t cameras) {
  const auto& m = config.model;
  return models::ModelOptions()
      .last_stride(m.last_stride)
      .streams(m.streams)
      .feature_dim(m.feature_dim)
      .height(config.data.height)
      .width(config.data.width)
      .patch_stride(m.patch_stride)
      .drop_path(m.drop_path)
      .cameras(m.sie ? cameras : 0)
      .sie_coefficient(m.sie_coefficient)
      .jpm(m.jpm)
      .jpm_shift(m.jpm_shift)
      .jpm_shuffle_groups(m.jpm_shuffle_groups)
      .jpm_groups(m.jpm_groups)
      .head(models::HeadOptions()
                .num_classes(num_classes)
                .pooling(models::parse_pooling(m.pooling))
                .gem_p(m.gem_p)
                .neck(models::parse_neck(m.neck))
                .neck_feat(models::parse_neck_feat(m.neck_feat))
                .classifier(models::parse_classifier(m.classifier))
                .scale(m.scale)
                .margin(m.margin)
                .subcenters(m.subcenters));
}

torch::ScalarType model_dtype(const Config& config) {
  return config.solver.precision == "float64" ? torch::kDouble : torch::kFloat;
}

models::ReidModel build_model(const Config& config, int64_t num_classes, const torch::Device& device,
                              const models::ModelRegistry& models, int64_t cameras, bool video) {
  if (!models.contains(config.model.name))
    throw ConfigError("model.name", models.unknown_message(config.model.name));
  if (config.model.sie && cameras <= 0)
    throw ConfigError("model.sie", "the camera embedding needs the number of cameras (the training set's)");
  const auto options = model_options(config, num_classes, cameras);
  models::ReidModel model =
      video ? models::make_temporal_model(config.model.name, options,
                                          models::parse_temporal_pooling(config.model.temporal_pooling), models)
            : models.create(config.model.name, options);
  if (!config.model.pretrained.empty())
    models::load_weights(*model, config.model.pretrained, config.model.pretrained_strict);
  model->to(device);
  const auto dtype = model_dtype(config);
  if (dtype != torch::kFloat) {
    // Module::to(dtype) would also convert integer buffers (num_batches_tracked).
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters())
      if (p.is_floating_point()) p.set_data(p.to(dtype));
    for (auto& b : model->buffers())
      if (b.is_floating_point()) b.set_data(b.to(dtype));
  }
  return model;
}

losses::LossSetOptions loss_options(const Config& config, int64_t num_classes, int64_t feature_dim,
                                    const std::vector<models::NamedWidth>& embeddings) {
  const auto& l = config.loss;
  return losses::LossSetOptions()
      .names(l.names)
      .ce_weight(l.ce.weight)
      .ce_epsilon(l.ce.epsilon)
      .triplet_weight(l.triplet.weight)
      .triplet(losses::TripletOptions()
                   .margin(l.triplet.margin)
                   .metric(eval::parse_metric(l.triplet.metric))
                   .normalize(l.triplet.normalize))
      .center_weight(l.center.weight)
      .center_lr(l.center.lr)
      .wrt_weight(l.wrt.weight)
      .wrt(losses::WrtOptions().metric(eval::parse_metric(l.wrt.metric)).normalize(l.wrt.normalize))
      .num_classes(num_classes)
      .feature_dim(feature_dim)
      .embeddings(embeddings);
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
      .amp_dtype(s.amp_dtype == "float16" ? torch::kHalf : torch::kBFloat16)
      .dtype(model_dtype(config))
      .channels_last(s.channels_last)
      .log_period(s.log_period)
      .seed(static_cast<uint64_t>(config.seed))
      .bucket_mb(config.distributed.bucket_mb);
}

std::vector<AuxiliaryOptimizer> auxiliary_optimizers(losses::LossSetImpl& loss) {
  std::vector<AuxiliaryOptimizer> out;
  for (const auto& [name, term] : loss.terms()) {
    auto optimizer = term->make_optimizer();
    if (!optimizer) continue;
    AuxiliaryOptimizer a;
    a.name = name + "_optimizer";
    a.optimizer = std::move(optimizer);
    a.grad_scale = term->optimizer_grad_scale();
    out.push_back(std::move(a));
  }
  return out;
}

eval::RetrievalOptions retrieval_options(const Config& config, const std::string& dataset) {
  const auto& t = config.test;
  eval::RetrievalOptions o;
  o.metric = eval::parse_metric(t.metric);
  o.normalize = t.normalize;
  o.query_expansion = t.query_expansion;
  o.rerank = t.rerank;
  o.rerank_options = {t.rerank_k1, t.rerank_k2, t.rerank_lambda};
  o.cuhk03_single_shot = dataset == "cuhk03" && config.data.cuhk03.classic_split;
  o.seed = static_cast<uint64_t>(config.seed);
  o.eval.max_rank = t.max_rank;
  o.eval.roc = t.roc;
  return o;
}

EvaluationOptions evaluation_options(const Config& config, const torch::Device& device) {
  const auto& t = config.test;
  EvaluationOptions o;
  o.transform = transform_options(config, false);
  o.extract.batch_size = t.batch_size;
  o.extract.workers = loader_workers(config, device.is_cuda());
  o.extract.flip = t.flip;
  o.extract.seq_len = config.data.seq_len;
  o.extract.sampling = data::parse_frame_sampling(config.data.test_sampling);
  o.extract.camera_ids = t.camera_ids;
  o.extract.device = device;
  o.extract.channels_last = config.solver.channels_last;
  o.extract.dtype = model_dtype(config);
  o.extract.max_image_pixels = config.data.max_image_pixels;
  o.retrieval = retrieval_options(config, "");
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

int loader_workers(const Config& config, bool cuda) {
  if (config.data.workers >= 0) return config.data.workers;
  const int cores = available_cores();
  return cuda ? std::clamp(cores - 2, 1, 12) : std::max(1, cores / 4);
}

data::LoaderOptions loader_options(const Config& config, bool cuda) {
  data::LoaderOptions o;
  o.workers = loader_workers(config, cuda);
  o.prefetch = config.data.prefetch;
  o.pin_memory = cuda;
  o.skip_bad_images = config.data.skip_bad_images;
  o.max_image_pixels = config.data.max_image_pixels;
  o.seq_len = config.data.seq_len;
  o.sampling = data::parse_frame_sampling(config.data.train_sampling);
  return o;
}

std::unique_ptr<data::Sampler> build_sampler(const Config& config, const data::RecordList& records, int world_size) {
  check_batch_split(config, world_size);
  std::unique_ptr<data::Sampler> sampler;
  try {
    sampler = data::make_sampler(config.sampler.name, records, config.data.batch_size, config.sampler.num_instances,
                                 config.sampler.drop_last, static_cast<uint64_t>(config.seed));
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
  const auto options = dataset_options(config);
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
