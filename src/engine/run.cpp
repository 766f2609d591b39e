#include "reid/engine/run.h"

#include <chrono>
#include <filesystem>

#include <torch/torch.h>

#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/models/norm.h"
#include "reid/models/summary.h"
#include "reid/utils/strings.h"

namespace fs = std::filesystem;

namespace reid::engine {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string first_line_difference(const std::string& a, const std::string& b) {
  const auto la = utils::split(a, '\n'), lb = utils::split(b, '\n');
  for (std::size_t i = 0; i < std::max(la.size(), lb.size()); ++i) {
    const std::string x = i < la.size() ? la[i] : "", y = i < lb.size() ? lb[i] : "";
    if (x != y) return "'" + utils::trim(x) + "' -> '" + utils::trim(y) + "'";
  }
  return "";
}

TrainResult run_training(const Config& config, const TrainSetup& setup, Distributed& dist) {
  const double run_start = now();
  const bool main = dist.is_main();
  const fs::path out(config.output_dir);
  const std::string checkpoint_path = (out / "checkpoints" / "last.ckpt").string();
  if (setup.resume && !fs::exists(checkpoint_path))
    throw IOError(checkpoint_path, "no checkpoint to resume from (train without --resume to start)");

  // Data.
  const auto sources = load_datasets(config, /*sources=*/true, setup.registries.datasets);
  const auto targets = load_datasets(config, /*sources=*/false, setup.registries.datasets);
  if (main) {
    for (const auto& d : sources) logger().info("\n{}", data::statistics_table(d));
    for (const auto& d : targets)
      if (std::find(config.data.sources.begin(), config.data.sources.end(), d.name) == config.data.sources.end())
        logger().info("\n{}", data::statistics_table(d));
  }
  const auto records = data::make_record_list(data::merge_training_sets(sources));
  const int64_t num_classes = data::count_pids(*records);
  if (main) {
    logger().info("training on {} images of {} identities", records->size(), num_classes);
    if (dist.is_distributed())
      logger().info("data-parallel: {} processes ({} backend), {} images per process and step", dist.world_size(),
                    dist.backend(), config.data.batch_size / dist.world_size());
  }

  // Model, losses, optimisers.
  const torch::Device device = dist.device();
  auto model = build_model(config, num_classes, device, setup.registries.models);
  if (main)
    logger().info("model {}: {}", config.model.name,
                  models::summarize(*model, config.data.height, config.data.width).text());
  if (config.solver.channels_last) models::to_channels_last(*model);
  if (config.model.sync_bn && dist.is_distributed()) {
    const int norms = models::convert_sync_batchnorm(*model, &dist);
    if (main) logger().info("synchronized batch norm: {} layers use the statistics of the global batch", norms);
  }
  losses::LossSet loss(loss_options(config, num_classes, model->feature_dim()));
  loss->to(device);
  if (model_dtype(config) != torch::kFloat) loss->to(model_dtype(config));
  std::vector<torch::Tensor> never_trained;
  for (const auto& p : model->parameters())
    if (!p.requires_grad()) never_trained.push_back(p);

  TrainComponents components;
  components.optimizer = build_optimizer(*model, optimizer_options(config), never_trained);
  components.auxiliary = auxiliary_optimizers(config, *loss);
  components.model = model;
  components.loss = loss;
  components.sampler = build_sampler(config, records);
  components.records = records;
  components.transform = transform_options(config, true);
  components.loader = loader_options(config, device.is_cuda());
  Trainer trainer(trainer_options(config), std::move(components), dist);

  std::vector<std::string> target_names;
  for (const auto& t : targets) target_names.push_back(t.name);
  auto recorder = main ? std::make_shared<Recorder>(config.output_dir, target_names, /*tensorboard=*/true) : nullptr;
  auto checkpoints = std::make_shared<CheckpointHook>(config.output_dir, config.solver.checkpoint_period);
  EvaluationHookOptions evaluation;
  evaluation.period = config.solver.eval_period;
  evaluation.best_metric = config.solver.best_metric;
  evaluation.output_dir = config.output_dir;
  auto evaluator = std::make_shared<EvaluationHook>(targets, evaluation_options(config, device), evaluation, recorder,
                                                    setup.callbacks);
  trainer.add_hook(std::make_shared<LoggingHook>(recorder, setup.callbacks));
  trainer.add_hook(checkpoints);
  trainer.add_hook(evaluator);

  const std::string yaml = config::to_yaml(config);
  if (setup.resume) {
    trainer.resume(checkpoint_path);
    const std::string difference = first_line_difference(trainer.state().config_yaml, yaml);
    if (main && !difference.empty())
      logger().warn("the config differs from the checkpoint's (first difference: {}); continuing with the new one",
                    difference);
    if (main)
      logger().info("resumed from {}: epoch {}, batch {}, iteration {}", checkpoint_path, trainer.state().epoch + 1,
                    trainer.state().sampler.position, trainer.state().iteration);
  }
  trainer.state().config_yaml = yaml;
  trainer.train();

  const auto& state = trainer.state();
  TrainResult result;
  result.rank = dist.rank();
  result.world_size = dist.world_size();
  result.interrupted = trainer.interrupted();
  result.epochs = state.epoch;
  result.best_metric = state.best_metric;
  result.best_epoch = state.best_epoch;
  result.results = evaluator->results();
  result.checkpoint = checkpoints->path();
  result.train_seconds = state.train_seconds;
  result.images_per_second = static_cast<double>(state.images) / std::max(state.train_seconds, 1e-9);
  if (result.interrupted) return result;
  result.final_weights = checkpoints->final_weights();
  if (main) {
    logger().info("training done: {} epochs, {} of training at {:.0f} img/s ({} wall time{} with evaluation); final "
                  "weights {}",
                  result.epochs, utils::format_duration(result.train_seconds), result.images_per_second,
                  utils::format_duration(now() - run_start), setup.resume ? " of this process" : "",
                  result.final_weights);
    if (state.best_epoch > 0)
      logger().info("best {} {:.2f}% at epoch {}", config.solver.best_metric, 100.0 * state.best_metric,
                    state.best_epoch);
  }
  return result;
}

}  // namespace

TrainResult train(const Config& config, const TrainSetup& setup) {
  const DistributedOptions job = distributed_options(config, setup.distributed);
  check_batch_split(config, job.world_size);
  const torch::Device device = rank_device(config, job);
  Distributed dist(job, device);
  try {
    return run_training(config, setup, dist);
  } catch (const DistributedError&) {
    throw;  // another rank failed; it has said why
  } catch (const std::exception& e) {
    dist.report_failure(e.what());
    throw;
  }
}

TrainResult train(const Config& config, bool resume, const TrainCallbacks& callbacks) {
  TrainSetup setup;
  setup.resume = resume;
  setup.callbacks = callbacks;
  return train(config, setup);
}

}  // namespace reid::engine
