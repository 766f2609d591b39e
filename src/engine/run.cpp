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

// Keys a checkpoint cannot survive a change of: they shape the model, the optimiser state, the
// loss terms' parameters, the training set or the batch sequence.
bool breaks_resume(const std::string& key) {
  static const char* const kept[] = {"model.pretrained", "model.pretrained_strict", "model.sync_bn"};
  for (const char* k : kept)
    if (key == k) return false;
  static const char* const prefixes[] = {"model.", "data.synthetic.", "data.cuhk03.", "data.custom.", "sampler."};
  for (const char* p : prefixes)
    if (utils::starts_with(key, p)) return true;
  static const char* const keys[] = {"data.sources", "data.combine_all", "data.batch_size", "loss.names",
                                     "solver.optimizer", "solver.no_decay_norm_bias", "solver.bias_lr_factor",
                                     "solver.precision", "seed"};
  for (const char* k : keys)
    if (key == k) return true;
  return false;
}

// Files that make a folder a run's (not log.txt or config.yaml, which a failed start leaves).
std::vector<std::string> run_files(const fs::path& dir) {
  std::vector<std::string> found;
  for (const char* name : {"checkpoints", "model_final.pt", "model_best.pt", "metrics.csv", "metrics.jsonl", "tb",
                           "training_curve.png"}) {
    std::error_code ec;
    if (fs::exists(dir / name, ec)) found.push_back(name);
  }
  return found;
}

TrainResult run_training(const Config& config, const TrainSetup& setup, Distributed& dist) {
  const double run_start = now();
  const bool main = dist.is_main();
  const fs::path out(config.output_dir);
  const std::string checkpoint_path = (out / "checkpoints" / "last.ckpt").string();
  check_names(config, setup.registries, /*training=*/true);
  // Everything random from here on (initialisation, the loss terms' parameters) follows
  // config.seed, so a run started from a program is reproducible as one from reid-train.
  seed_everything(static_cast<std::uint64_t>(config.seed));
  if (main) prepare_run_folder(config.output_dir, setup.resume, setup.overwrite);
  std::vector<config::KeyDifference> differences;
  if (setup.resume) differences = check_resume(config);
  // Nothing was written into the folder before these checks: a run refused by them leaves it
  // as it was.
  if (main) config::save_config(config, (out / "config.yaml").string());

  // Data.
  const auto sources = load_datasets(config, /*sources=*/true, setup.registries.datasets);
  const auto targets = load_datasets(config, /*sources=*/false, setup.registries.datasets);
  if (main) {
    for (const auto& d : sources) {
      const auto shared = data::shared_identities(d);
      const bool tested = std::count(config.data.targets.begin(), config.data.targets.end(), d.name) > 0;
      if (tested && !shared.empty())
        logger().warn("dataset {}: {} identities appear in both its training and its test split (first: {}): the "
                      "test measures memorisation, not re-identification of unseen people",
                      d.name, shared.size(), shared.front());
    }
    for (const auto& d : sources) logger().info("\n{}", data::statistics_table(d));
    for (const auto& d : targets)
      if (std::find(config.data.sources.begin(), config.data.sources.end(), d.name) == config.data.sources.end())
        logger().info("\n{}", data::statistics_table(d));
  }
  const auto records = data::make_record_list(data::merge_training_sets(sources));
  const int64_t num_classes = data::count_pids(*records);
  if (num_classes < 2)
    throw ConfigError("data.sources", "the training set has " + std::to_string(num_classes) +
                                          " identity: re-identification needs at least 2 to learn anything");
  if (setup.resume) {
    const auto saved = read_training_state(checkpoint_path);
    if (saved.num_classes > 0 &&
        (saved.num_classes != num_classes || saved.num_images != static_cast<int64_t>(records->size())))
      throw ConfigError("data.sources", "the checkpoint " + checkpoint_path + " was trained on " +
                                            std::to_string(saved.num_images) + " images of " +
                                            std::to_string(saved.num_classes) + " identities; the training set is now " +
                                            std::to_string(records->size()) + " images of " +
                                            std::to_string(num_classes) + " identities: it cannot be resumed with it");
  }
  if (main) {
    logger().info("training on {} images of {} identities", records->size(), num_classes);
    if (dist.is_distributed())
      logger().info("data-parallel: {} processes ({} backend), {} images per process and step", dist.world_size(),
                    dist.backend(), config.data.batch_size / dist.world_size());
  }

  // Model, losses, optimisers.
  const torch::Device device = dist.device();
  configure_backends(config, device);
  auto model = build_model(config, num_classes, device, setup.registries.models);
  if (main)
    logger().info("model {}: {}", config.model.name,
                  models::summarize(*model, config.data.height, config.data.width).text());
  if (config.solver.channels_last) models::to_channels_last(*model);
  if (config.model.sync_bn && dist.is_distributed()) {
    const int norms = models::convert_sync_batchnorm(*model, &dist);
    if (main) logger().info("synchronized batch norm: {} layers use the statistics of the global batch", norms);
  }
  losses::LossSet loss(loss_options(config, num_classes, model->feature_dim(), model->embedding_dims()),
                       setup.registries.losses);
  loss->to(device);
  if (model_dtype(config) != torch::kFloat) loss->to(model_dtype(config));
  std::vector<torch::Tensor> never_trained;
  for (const auto& p : model->parameters())
    if (!p.requires_grad()) never_trained.push_back(p);

  TrainComponents components;
  components.optimizer = build_optimizer(*model, optimizer_options(config), never_trained);
  components.auxiliary = auxiliary_optimizers(*loss);
  components.model = model;
  components.loss = loss;
  components.sampler = build_sampler(config, records);
  components.records = records;
  components.transform = transform_options(config, true);
  components.loader = loader_options(config, device.is_cuda());
  Trainer trainer(trainer_options(config), std::move(components), dist);

  const std::string yaml = config::to_yaml(config);
  if (setup.resume) {
    trainer.resume(checkpoint_path);
    if (main && !differences.empty()) {
      std::vector<std::string> changed;
      for (const auto& d : differences) changed.push_back(d.path + ": " + d.before + " -> " + d.after);
      logger().warn("the config differs from the checkpoint's ({}); continuing with the new one", utils::join(changed));
    }
    if (main)
      logger().info("resumed from {}: epoch {}, batch {}, iteration {}", checkpoint_path, trainer.state().epoch + 1,
                    trainer.state().sampler.position, trainer.state().iteration);
  }
  trainer.state().config_yaml = yaml;
  trainer.state().num_classes = num_classes;
  trainer.state().num_images = static_cast<int64_t>(records->size());

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
  const bool triplet = std::count(config.loss.names.begin(), config.loss.names.end(), "triplet") > 0;
  trainer.add_hook(std::make_shared<LoggingHook>(recorder, setup.callbacks,
                                                 triplet ? config.loss.triplet.margin : 0.0));
  trainer.add_hook(checkpoints);
  trainer.add_hook(evaluator);

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

void prepare_run_folder(const std::string& output_dir, bool resume, bool overwrite) {
  const fs::path dir(output_dir);
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw ConfigError("output_dir", "'" + output_dir + "' exists and is not a folder");
  if (resume) {
    if (!fs::exists(dir / "checkpoints" / "last.ckpt", ec))
      throw IOError((dir / "checkpoints" / "last.ckpt").string(),
                    "no checkpoint to resume from (train without --resume to start)");
    return;
  }
  const auto found = run_files(dir);
  if (found.empty()) return;
  if (!overwrite)
    throw ConfigError("output_dir", "'" + output_dir + "' already holds a run (" + utils::join(found) +
                                        "): continue it with --resume, replace it with --overwrite, or choose "
                                        "another folder with -o");
  for (const auto& name : found) {
    fs::remove_all(dir / name, ec);
    if (ec) throw IOError((dir / name).string(), "cannot remove it for --overwrite: " + ec.message());
  }
}

std::vector<config::KeyDifference> check_resume(const Config& config) {
  const std::string path = (fs::path(config.output_dir) / "checkpoints" / "last.ckpt").string();
  const TrainingState state = read_training_state(path);
  Config saved;
  try {
    saved = config::parse_config(state.config_yaml);
  } catch (const Error& e) {
    throw IOError(path, std::string("the checkpoint's config cannot be read: ") + e.what());
  }
  std::vector<config::KeyDifference> allowed;
  std::vector<std::string> broken;
  for (const auto& d : config::diff_configs(saved, config)) {
    if (breaks_resume(d.path))
      broken.push_back(d.path + " (checkpoint " + d.before + ", now " + d.after + ")");
    else if (d.path != "output_dir")
      allowed.push_back(d);
  }
  if (!broken.empty())
    throw ConfigError(broken.size() == 1 ? broken.front().substr(0, broken.front().find(' ')) : "--resume",
                      "cannot continue " + path + " with a changed " + utils::join(broken) +
                          ": these shape the model, the optimiser state or the training data; restore them, or "
                          "start a new run in another folder");
  return allowed;
}

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
