#include "reid/app/train.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <torch/torch.h>

#include "reid/config/loader.h"
#include "reid/config/options.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/deploy/model.h"
#include "reid/engine/builders.h"
#include "reid/engine/checkpoint.h"
#include "reid/engine/hooks.h"
#include "reid/engine/recorder.h"
#include "reid/engine/trainer.h"
#include "reid/models/norm.h"
#include "reid/models/summary.h"
#include "reid/utils/strings.h"

namespace fs = std::filesystem;

namespace reid::app {
namespace {

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

// The files a training run writes into its folder (paths relative to it), temporaries of the
// atomic writer included; not log.txt or config.yaml, which a failed start leaves too. Only
// these make a folder a run's, and only these does --overwrite remove.
std::vector<std::string> run_files(const fs::path& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const char* name : {"model_final.pt", "model_best.pt", "metrics.csv", "metrics.jsonl", "training_curve.png",
                           "model_final.tmp.pt", "model_best.tmp.pt", "training_curve.tmp.png",
                           "checkpoints/last.ckpt", "checkpoints/last.tmp.ckpt"})
    if (fs::exists(dir / name, ec)) found.push_back(name);
  // TensorBoard event files LibReID wrote end in ".libreid" (tensorboard.cpp).
  if (fs::is_directory(dir / "tb", ec))
    for (const auto& entry : fs::directory_iterator(dir / "tb", ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file(ec) && utils::starts_with(name, "events.out.tfevents.") &&
          utils::ends_with(name, ".libreid"))
        found.push_back("tb/" + name);
    }
  return found;
}

// Every rank's text, in rank order (collective).
std::vector<std::string> exchange_text(engine::Distributed& dist, const std::string& mine) {
  const auto options = torch::TensorOptions().device(dist.device());
  const auto lengths = dist.all_gather(torch::full({1}, static_cast<int64_t>(mine.size()), options.dtype(torch::kLong)));
  int64_t longest = 1;
  for (const auto& l : lengths) longest = std::max(longest, l.item<int64_t>());
  auto bytes = torch::zeros({longest}, torch::kUInt8);
  std::memcpy(bytes.data_ptr<uint8_t>(), mine.data(), mine.size());
  const auto all = dist.all_gather(bytes.to(dist.device()));
  std::vector<std::string> texts;
  for (std::size_t r = 0; r < all.size(); ++r) {
    const auto cpu = all[r].to(torch::kCPU).contiguous();
    texts.emplace_back(reinterpret_cast<const char*>(cpu.data_ptr<uint8_t>()),
                       static_cast<std::size_t>(lengths[r].item<int64_t>()));
  }
  return texts;
}

// Keys that may differ between the ranks of one job: where each machine keeps its data, its
// device and threads, and where rank 0 writes.
bool differs_per_rank(const std::string& key) {
  return key == "device" || key == "threads" || key == "output_dir" || key == "data.root" || key == "data.workers" ||
         key == "data.prefetch";
}

// Every rank must train the same job: the same config (but for the keys above), the same
// training set and the same model. Checked before training's first collective, which would
// otherwise abort or hang on tensors of different sizes. Throws the same ConfigError on every
// rank, naming what differs and on which rank.
void check_ranks_agree(engine::Distributed& dist, const Config& config, const data::RecordList& records, int64_t num_classes,
                       const torch::nn::Module& model) {
  if (!dist.is_distributed()) return;
  std::string shapes;
  for (const auto& p : model.named_parameters()) shapes += p.key() + " " + c10::str(p.value().sizes()) + "\n";
  for (const auto& b : model.named_buffers()) shapes += b.key() + " " + c10::str(b.value().sizes()) + "\n";
  const std::string training_set =
      std::to_string(records->size()) + " images of " + std::to_string(num_classes) + " identities";
  const std::string separator = "\n\x1f\n";
  const auto texts =
      exchange_text(dist, config::to_yaml(config) + separator + training_set + separator + shapes);
  auto parts = [&](const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (int i = 0; i < 2; ++i) {
      const auto end = text.find(separator, start);
      out.push_back(text.substr(start, end - start));
      start = end == std::string::npos ? text.size() : end + separator.size();
    }
    out.push_back(text.substr(start));
    return out;
  };
  const auto reference = parts(texts[0]);
  std::vector<std::string> problems;
  for (std::size_t r = 1; r < texts.size(); ++r) {
    if (texts[r] == texts[0]) continue;
    const auto other = parts(texts[r]);
    const std::string rank = "rank " + std::to_string(r);
    if (other[0] != reference[0]) {
      std::vector<std::string> keys;
      try {
        for (const auto& d : config::diff_configs(config::parse_config(reference[0]), config::parse_config(other[0])))
          if (!differs_per_rank(d.path)) keys.push_back(d.path + " " + d.before + " (rank 0) vs " + d.after);
      } catch (const std::exception& e) {
        keys.push_back(std::string("its config cannot be compared (") + e.what() + ")");
      }
      if (!keys.empty()) problems.push_back(rank + ": " + utils::join(keys, "; "));
    }
    if (other[1] != reference[1])
      problems.push_back(rank + ": training set of " + other[1] + ", rank 0's of " + reference[1]);
    if (other[2] != reference[2] && problems.empty()) {
      const auto a = utils::split(reference[2], '\n'), b = utils::split(other[2], '\n');
      std::size_t i = 0;
      while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
      problems.push_back(rank + ": its model differs from rank 0's at " +
                         (i < b.size() ? "'" + b[i] + "'" : std::string("the end")) + " (rank 0: " +
                         (i < a.size() ? "'" + a[i] + "'" : std::string("the end")) + ")");
    }
  }
  if (!problems.empty())
    throw ConfigError("distributed", "the ranks of this job were not started with the same job: " +
                                         utils::join(problems, "; ") +
                                         ". Start every rank with the same config and data (only device, threads, "
                                         "output_dir, data.root, data.workers and data.prefetch may differ)");
}

// The training and test sets of a run.
struct RunData {
  std::vector<data::DatasetSplits> sources, targets;
  data::RecordList records;  // the merged training set
  int64_t num_classes = 0;
  bool video = false;
};

// Step 1: the folder and the config. Refuses (before writing anything) what cannot run, then
// writes the config; returns the allowed differences from the checkpoint's config on resume.
std::vector<config::KeyDifference> prepare(const Config& config, const TrainSetup& setup, bool main) {
  engine::check_names(config, setup.registries, /*training=*/true);
  // Everything random from here on (initialisation, the loss terms' parameters) follows
  // config.seed, so a run started from a program is reproducible as one from reid-train.
  seed_everything(static_cast<std::uint64_t>(config.seed));
  if (main) prepare_run_folder(config.output_dir, setup.resume, setup.overwrite);
  std::vector<config::KeyDifference> differences;
  if (setup.resume) differences = check_resume(config);
  // Nothing was written into the folder before these checks: a run refused by them leaves it
  // as it was.
  if (main) config::save_config(config, (fs::path(config.output_dir) / "config.yaml").string());
  return differences;
}

// Step 2: the data sets, their statistics, and the merged training set (checked against the
// checkpoint's on resume).
RunData load_data(const Config& config, const TrainSetup& setup, const std::string& checkpoint_path,
                  engine::Distributed& dist) {
  const bool main = dist.is_main();
  RunData d;
  d.sources = engine::load_datasets(config, /*sources=*/true, setup.registries.datasets);
  d.targets = engine::load_datasets(config, /*sources=*/false, setup.registries.datasets);
  if (main) {
    for (const auto& set : d.sources) {
      const auto shared = data::shared_identities(set);
      const bool tested = std::count(config.data.targets.begin(), config.data.targets.end(), set.name) > 0;
      if (tested && !shared.empty())
        logger().warn("dataset {}: {} identities appear in both its training and its test split (first: {}): the "
                      "test measures memorisation, not re-identification of unseen people",
                      set.name, shared.size(), shared.front());
    }
    for (const auto& set : d.sources) logger().info("\n{}", data::statistics_table(set));
    for (const auto& set : d.targets)
      if (std::find(config.data.sources.begin(), config.data.sources.end(), set.name) == config.data.sources.end())
        logger().info("\n{}", data::statistics_table(set));
  }
  d.records = data::make_record_list(data::merge_training_sets(d.sources));
  d.num_classes = data::count_pids(*d.records);
  const auto& records = d.records;
  const int64_t num_classes = d.num_classes;
  if (num_classes < 2)
    throw ConfigError("data.sources", "the training set has " + std::to_string(num_classes) +
                                          " identity: re-identification needs at least 2 to learn anything");
  if (setup.resume) {
    const auto saved = engine::read_training_state(checkpoint_path);
    if (saved.num_classes > 0 &&
        (saved.num_classes != num_classes || saved.num_images != static_cast<int64_t>(records->size())))
      throw ConfigError("data.sources", "the checkpoint " + checkpoint_path + " was trained on " +
                                            std::to_string(saved.num_images) + " images of " +
                                            std::to_string(saved.num_classes) + " identities; the training set is now " +
                                            std::to_string(records->size()) + " images of " +
                                            std::to_string(num_classes) + " identities: it cannot be resumed with it");
  }
  d.video = data::is_video(*records);
  if (main) {
    logger().info("training on {} {} of {} identities", records->size(), d.video ? "tracklets" : "images", num_classes);
    if (d.video)
      logger().info("clips of {} frames ({} frames for training, {} at test), {} pooling over time",
                    config.data.seq_len, config.data.train_sampling, config.data.test_sampling,
                    config.model.temporal_pooling);
    if (dist.is_distributed())
      logger().info("data-parallel: {} processes ({} backend), {} images per process and step", dist.world_size(),
                    dist.backend(), config.data.batch_size / dist.world_size());
  }
  return d;
}

// Step 3: model, losses, optimisers, sampler and loader, after the ranks agree on the job.
engine::TrainComponents build_components(const Config& config, const TrainSetup& setup, const RunData& d,
                                         engine::Distributed& dist) {
  const bool main = dist.is_main();
  const torch::Device device = dist.device();
  engine::configure_backends(config, device);
  // SIE: one camera embedding per camera id of the training set (merged sets' ids are offset).
  int64_t cameras = 0;
  for (const auto& record : *d.records) cameras = std::max(cameras, record.camid + 1);
  auto model = deploy::build_model(config, d.num_classes, device, setup.registries.models, cameras, d.video);
  if (main)
    logger().info("model {}: {}", config.model.name,
                  models::summarize(*model, config.data.height, config.data.width).text());
  if (config.solver.channels_last) models::to_channels_last(*model);
  if (config.model.sync_bn && dist.is_distributed()) {
    const int norms = models::convert_sync_batchnorm(*model, &dist);
    if (main) logger().info("synchronized batch norm: {} layers use the statistics of the global batch", norms);
  }
  losses::LossSet loss(config::loss_options(config, d.num_classes, model->feature_dim(), model->embedding_dims()),
                       setup.registries.losses);
  loss->to(device);
  if (config::model_dtype(config) != torch::kFloat) loss->to(config::model_dtype(config));
  std::vector<torch::Tensor> never_trained;
  for (const auto& p : model->parameters())
    if (!p.requires_grad()) never_trained.push_back(p);

  engine::TrainComponents components;
  components.optimizer = engine::build_optimizer(*model, engine::optimizer_options(config), never_trained,
                                                 setup.registries.optimizers);
  components.model = model;
  components.loss = loss;
  check_ranks_agree(dist, config, d.records, d.num_classes, *model);
  components.sampler = engine::build_sampler(config, d.records, dist.world_size(), setup.registries.samplers);
  components.records = d.records;
  components.transform = config::transform_options(config, true);
  components.loader = config::loader_options(config, device.is_cuda());
  return components;
}

// Step 4 (on resume): the checkpoint's state, with the config's allowed changes logged.
void resume_from(engine::Trainer& trainer, const std::string& checkpoint_path,
                 const std::vector<config::KeyDifference>& differences, bool main) {
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

// The hooks the run installs besides the program's own, in their order.
struct BuiltinHooks {
  std::shared_ptr<engine::CheckpointHook> checkpoints;
  std::shared_ptr<engine::EvaluationHook> evaluator;
};

// Step 5: logging and metrics files, checkpoints, evaluation, then the program's hooks.
BuiltinHooks add_hooks(engine::Trainer& trainer, const Config& config, const TrainSetup& setup, const RunData& d,
                       bool main) {
  std::vector<std::string> target_names;
  for (const auto& t : d.targets) target_names.push_back(t.name);
  auto recorder = main ? std::make_shared<engine::Recorder>(config.output_dir, target_names, /*tensorboard=*/true) : nullptr;
  BuiltinHooks hooks;
  hooks.checkpoints = std::make_shared<engine::CheckpointHook>(config.output_dir, config.solver.checkpoint_period);
  engine::EvaluationHookOptions evaluation;
  evaluation.period = config.solver.eval_period;
  evaluation.best_metric = config.solver.best_metric;
  evaluation.metrics = setup.registries.metrics;
  evaluation.output_dir = config.output_dir;
  hooks.evaluator = std::make_shared<engine::EvaluationHook>(
      d.targets, engine::evaluation_options(config, trainer.dist().device()), evaluation, recorder);
  trainer.add_hook(std::make_shared<engine::LoggingHook>(recorder));
  trainer.add_hook(hooks.checkpoints);
  trainer.add_hook(hooks.evaluator);
  trainer.add_hook(std::make_shared<engine::TrainCallbacks>(setup.callbacks));
  for (const auto& hook : setup.hooks) trainer.add_hook(hook);
  return hooks;
}

// Step 6: what the run did, logged on the main rank.
TrainResult summarize(engine::Trainer& trainer, const BuiltinHooks& hooks, const Config& config,
                      const TrainSetup& setup, double run_start) {
  const auto& state = trainer.state();
  TrainResult result;
  result.rank = trainer.dist().rank();
  result.world_size = trainer.dist().world_size();
  result.interrupted = trainer.interrupted();
  result.epochs = state.epoch;
  result.best_metric = state.best_metric;
  result.best_epoch = state.best_epoch;
  result.results = hooks.evaluator->results();
  result.checkpoint = hooks.checkpoints->path();
  result.train_seconds = state.train_seconds;
  result.images_per_second = static_cast<double>(state.images) / std::max(state.train_seconds, 1e-9);
  if (result.interrupted) return result;
  result.final_weights = hooks.checkpoints->final_weights();
  if (trainer.dist().is_main()) {
    logger().info("training done: {} epochs, {} of training at {:.0f} img/s ({} wall time{} with evaluation); final "
                  "weights {}",
                  result.epochs, utils::format_duration(result.train_seconds), result.images_per_second,
                  utils::format_duration(monotonic_seconds() - run_start), setup.resume ? " of this process" : "",
                  result.final_weights);
    if (state.best_epoch > 0)
      logger().info("best {} {:.2f}% at epoch {}", config.solver.best_metric, 100.0 * state.best_metric,
                    state.best_epoch);
  }
  return result;
}

TrainResult run_training(const Config& config, const TrainSetup& setup, engine::Distributed& dist) {
  const double run_start = monotonic_seconds();
  const bool main = dist.is_main();
  const std::string checkpoint_path = (fs::path(config.output_dir) / "checkpoints" / "last.ckpt").string();
  const auto differences = prepare(config, setup, main);
  const RunData d = load_data(config, setup, checkpoint_path, dist);
  engine::Trainer trainer(engine::trainer_options(config).schedulers(setup.registries.schedulers),
                          build_components(config, setup, d, dist), dist);
  if (setup.resume) resume_from(trainer, checkpoint_path, differences, main);
  trainer.state().config_yaml = config::to_yaml(config);
  trainer.state().num_classes = d.num_classes;
  trainer.state().num_images = static_cast<int64_t>(d.records->size());
  const auto hooks = add_hooks(trainer, config, setup, d, main);
  trainer.train();
  return summarize(trainer, hooks, config, setup, run_start);
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
  // Only what a run wrote goes; anything else in its folders (a user's notes, another
  // experiment's TensorBoard folder) stays, and the log says so.
  for (const auto& name : found) {
    fs::remove(dir / name, ec);
    if (ec) throw IOError((dir / name).string(), "cannot remove it for --overwrite: " + ec.message());
  }
  for (const char* sub : {"checkpoints", "tb"}) {
    if (!fs::is_directory(dir / sub, ec)) continue;
    std::vector<std::string> kept;
    for (const auto& entry : fs::directory_iterator(dir / sub, ec)) kept.push_back(entry.path().filename().string());
    if (kept.empty()) {
      fs::remove(dir / sub, ec);
    } else {
      std::sort(kept.begin(), kept.end());
      logger().warn("--overwrite: {} holds {} that LibReID did not write; left in place: {}", (dir / sub).string(),
                    kept.size() == 1 ? "one entry" : std::to_string(kept.size()) + " entries", utils::join(kept));
    }
  }
}

std::vector<config::KeyDifference> check_resume(const Config& config) {
  const std::string path = (fs::path(config.output_dir) / "checkpoints" / "last.ckpt").string();
  const engine::TrainingState state = engine::read_training_state(path);
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
  const engine::DistributedOptions job = engine::distributed_options(config, setup.distributed);
  engine::check_batch_split(config, job.world_size);
  const torch::Device device = engine::rank_device(config, job);
  engine::Distributed dist(job, device);
  try {
    return run_training(config, setup, dist);
  } catch (const engine::DistributedError&) {
    throw;  // another rank failed; it has said why
  } catch (const std::exception& e) {
    dist.report_failure(e.what());
    throw;
  }
}

TrainResult train(const Config& config, bool resume, const engine::TrainCallbacks& callbacks) {
  TrainSetup setup;
  setup.resume = resume;
  setup.callbacks = callbacks;
  return train(config, setup);
}

}  // namespace reid::app
