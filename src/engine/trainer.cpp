#include "reid/engine/trainer.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <set>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/engine/builders.h"
#include "reid/engine/checkpoint.h"
#include "reid/engine/optim.h"
#include "reid/eval/visualize.h"
#include "reid/models/summary.h"
#include "reid/models/weights.h"
#include "reid/utils/strings.h"
#include "reid/utils/torch_file.h"

namespace fs = std::filesystem;

namespace reid::engine {
namespace {

// The only process-wide state besides the logger: signal handlers can touch nothing else.
std::atomic<bool> g_stop{false};

extern "C" void on_signal(int signal) {
  g_stop.store(true);
  std::signal(signal, SIG_DFL);  // a second signal ends the process the usual way
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// bf16 autocast on CUDA (no loss scaling needed). The API changed in LibTorch 2.4.
void set_autocast(bool enabled) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  if (enabled) at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
  at::autocast::set_enabled(enabled);
  if (enabled) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
  if (!enabled) at::autocast::clear_cache();
}

double select_metric(const std::string& name, const eval::EvalResult& r) {
  if (name == "map") return r.mAP;
  if (name == "minp") return r.mINP;
  return r.cmc.at(0);
}

// freeze-then-open: during the first fixbase_epochs only the open layers train (and only their
// batch norms update statistics), as torchreid does.
class LayerGate {
 public:
  LayerGate(torch::nn::Module& model, const std::vector<std::string>& open) : model_(model) {
    std::set<std::string> names;
    for (const auto& child : model.named_children()) names.insert(child.key());
    for (const auto& name : open)
      if (!names.count(name))
        throw ConfigError("solver.open_layers", "'" + name + "' is not a top-level layer of the model (layers: " +
                                                    utils::join(std::vector<std::string>(names.begin(), names.end())) + ")");
    open_ = std::set<std::string>(open.begin(), open.end());
    for (const auto& p : model.parameters())
      if (!p.requires_grad()) frozen_.insert(p.unsafeGetTensorImpl());
  }
  void apply(bool fixbase) {
    model_.train();
    for (const auto& child : model_.named_children()) {
      const bool open = !fixbase || open_.count(child.key());
      child.value()->train(open);
      for (auto& p : child.value()->parameters())
        if (!frozen_.count(p.unsafeGetTensorImpl())) p.set_requires_grad(open);
    }
  }

 private:
  torch::nn::Module& model_;
  std::set<std::string> open_;
  std::set<const void*> frozen_;
};

std::string first_line_difference(const std::string& a, const std::string& b) {
  const auto la = utils::split(a, '\n'), lb = utils::split(b, '\n');
  for (std::size_t i = 0; i < std::max(la.size(), lb.size()); ++i) {
    const std::string x = i < la.size() ? la[i] : "", y = i < lb.size() ? lb[i] : "";
    if (x != y) return "'" + utils::trim(x) + "' -> '" + utils::trim(y) + "'";
  }
  return "";
}

}  // namespace

void install_signal_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}
void request_stop() { g_stop.store(true); }
bool stop_requested() { return g_stop.load(); }
void clear_stop_request() { g_stop.store(false); }

std::map<std::string, eval::EvalResult> evaluate_targets(models::ReidModelImpl& model, const Config& config,
                                                         const std::vector<data::DatasetSplits>& targets,
                                                         const std::string& output_dir) {
  const torch::Device device = parse_device(config.device);
  std::map<std::string, eval::EvalResult> results;
  eval::ExtractOptions extract;
  extract.batch_size = config.test.batch_size;
  extract.workers = config.data.workers;
  extract.flip = config.test.flip;
  extract.device = device;
  extract.channels_last = config.solver.channels_last;
  const data::Transform transform(transform_options(config, false));
  for (const auto& target : targets) {
    const double start = now();
    const auto query = eval::extract_features(model, data::make_record_list(target.query), transform, extract);
    const auto gallery = eval::extract_features(model, data::make_record_list(target.gallery), transform, extract);
    const double extracted = now();
    const auto options = retrieval_options(config, target.name);
    const auto result = eval::evaluate_retrieval(query, gallery, options);
    logger().info("{}: {} (features {:.1f}s, metrics {:.1f}s)", target.name, result.summary(config.test.ranks),
                  extracted - start, now() - extracted);
    if (!output_dir.empty() && config.test.save_features) {
      const std::string dir = (fs::path(output_dir) / "features" / target.name).string();
      eval::save_feature_set(query, dir, "query");
      eval::save_feature_set(gallery, dir, "gallery");
      logger().info("{}: features written to {}", target.name, dir);
    }
    if (!output_dir.empty() && config.test.visualize > 0) {
      const auto [q, g] = eval::prepare_features(query, gallery, options);
      std::unique_ptr<eval::KReciprocalReranker> reranker;
      if (options.rerank) reranker = std::make_unique<eval::KReciprocalReranker>(q, g, options.metric, options.rerank_options);
      eval::RankedListOptions ranked;
      ranked.topk = config.test.visualize_topk;
      const auto files = eval::write_ranked_lists(
          [&](int64_t i) {
            return reranker ? reranker->rows(i, i + 1)[0].clone()
                            : eval::compute_distance(q.narrow(0, i, 1), g, options.metric)[0];
          },
          query, gallery, eval::worst_queries(result, config.test.visualize),
          (fs::path(output_dir) / "ranked_lists" / target.name).string(), ranked);
      logger().info("{}: {} ranked lists of the worst queries in {}", target.name, files.size(),
                    (fs::path(output_dir) / "ranked_lists" / target.name).string());
    }
    results.emplace(target.name, result);
  }
  return results;
}

TrainResult train(const Config& config, bool resume, const TrainCallbacks& callbacks) {
  const double run_start = now();
  const torch::Device device = parse_device(config.device);
  const bool cuda = device.is_cuda();
  const auto& s = config.solver;
  const fs::path out(config.output_dir);
  const std::string checkpoint_path = (out / "checkpoints" / "last.ckpt").string();
  if (resume && !fs::exists(checkpoint_path))
    throw IOError(checkpoint_path, "no checkpoint to resume from (train without --resume to start)");

  // Data.
  const auto sources = load_datasets(config, /*sources=*/true);
  for (const auto& d : sources) logger().info("\n{}", data::statistics_table(d));
  const auto targets = load_datasets(config, /*sources=*/false);
  for (const auto& d : targets)
    if (std::find(config.data.sources.begin(), config.data.sources.end(), d.name) == config.data.sources.end())
      logger().info("\n{}", data::statistics_table(d));
  const auto records = data::make_record_list(data::merge_training_sets(sources));
  const int64_t num_classes = data::count_pids(*records);
  logger().info("training on {} images of {} identities", records->size(), num_classes);

  // Model, losses, optimisers.
  auto model = build_model(config, num_classes, device);
  logger().info("model {}: {}", config.model.name, models::summarize(*model, config.data.height, config.data.width).text());
  const bool channels_last = s.channels_last;
  if (channels_last) models::to_channels_last(*model);
  losses::LossSet loss(loss_options(config, num_classes, model->feature_dim()));
  loss->to(device);
  std::vector<torch::Tensor> never_trained;
  for (const auto& p : model->parameters())
    if (!p.requires_grad()) never_trained.push_back(p);
  Optimizer optimizer = build_optimizer(
      *model,
      {s.optimizer, s.base_lr, s.weight_decay, s.no_decay_norm_bias, s.bias_lr_factor, s.momentum, s.nesterov,
       s.adam_beta1, s.adam_beta2},
      never_trained);
  std::unique_ptr<torch::optim::SGD> center_optimizer;
  if (loss->center())
    center_optimizer = std::make_unique<torch::optim::SGD>(loss->center()->parameters(),
                                                          torch::optim::SGDOptions(config.loss.center.lr));
  const ScheduleOptions schedule{s.scheduler,     s.milestones,    s.gamma,         s.flat_epochs,
                                 s.min_lr / s.base_lr, s.warmup_epochs, s.warmup_factor, s.max_epochs};
  LayerGate gate(*model, s.open_layers);

  // Sampling and loading.
  auto sampler = build_sampler(config, records);
  data::DataLoader loader(records, data::Transform(transform_options(config, true)), loader_options(config, cuda));

  TrainingState state;
  state.sampler = sampler->state();
  state.config_yaml = config::to_yaml(config);
  const Trainables trainables{model.get(), optimizer.optimizer.get(), loss.get(), center_optimizer.get()};
  if (resume) {
    const std::string yaml = state.config_yaml;
    state = load_checkpoint(checkpoint_path, trainables);
    sampler->load_state(state.sampler);
    const std::string difference = first_line_difference(state.config_yaml, yaml);
    if (!difference.empty())
      logger().warn("the config differs from the checkpoint's (first difference: {}); continuing with the new one",
                    difference);
    state.config_yaml = yaml;
    logger().info("resumed from {}: epoch {}, batch {}, iteration {}", checkpoint_path, state.epoch + 1,
                  state.sampler.position, state.iteration);
  }
  std::vector<std::string> target_names;
  for (const auto& t : targets) target_names.push_back(t.name);
  Recorder recorder(config.output_dir, target_names, /*tensorboard=*/true);

  TrainResult result;
  result.checkpoint = checkpoint_path;
  result.best_metric = state.best_metric;
  result.best_epoch = state.best_epoch;
  // Counted over the whole run: a resumed run continues the totals kept in the checkpoint.
  int64_t images_trained = state.images;
  double train_time = state.train_seconds;
  const int64_t total_epochs = s.max_epochs;

  auto save_state = [&](double seconds) {
    state.train_seconds = seconds;
    state.images = images_trained;
    save_checkpoint(checkpoint_path, state, trainables);
  };

  for (int64_t epoch = state.epoch; epoch < total_epochs; ++epoch) {
    const double factor = lr_factor(schedule, static_cast<int>(epoch));
    optimizer.set_lr_factor(factor);
    const bool fixbase = epoch < s.fixbase_epochs;
    gate.apply(fixbase);
    if (fixbase && (epoch == state.epoch))
      logger().info("epochs 1-{}: training only {}", s.fixbase_epochs, utils::join(s.open_layers));

    const int64_t first_position = sampler->state().position;
    const int64_t batches = sampler->batches_in_epoch();
    loader.start(sampler->remaining(), mix_seed(static_cast<uint64_t>(config.seed), static_cast<uint64_t>(epoch)),
                 first_position);
    int64_t position = first_position;
    const double epoch_start = now();
    double data_wait = 0.0, window_start = now(), window_data = 0.0;
    int64_t window_images = 0, epoch_images = 0, epoch_steps = 0;
    double loss_sum = 0.0;
    std::vector<std::pair<std::string, double>> term_sums;

    while (true) {
      const double wait_start = now();
      auto batch = loader.next();
      const double waited = now() - wait_start;
      if (!batch) break;
      data_wait += waited;
      window_data += waited;
      auto images = batch->images.to(device, /*non_blocking=*/true);
      if (channels_last) images = images.contiguous(at::MemoryFormat::ChannelsLast);
      const auto labels = batch->pids.to(device, /*non_blocking=*/true);

      if (s.amp && cuda) set_autocast(true);
      const auto output = model->forward(images, labels);
      auto losses_now = loss->forward(output, labels);
      if (s.amp && cuda) set_autocast(false);
      const double total = losses_now.total.item<double>();
      if (!std::isfinite(total))
        throw Error("the loss is " + std::string(std::isnan(total) ? "NaN" : "infinite") + " at epoch " +
                    std::to_string(epoch + 1) + ", batch " + std::to_string(position + 1) + " (iteration " +
                    std::to_string(state.iteration + 1) + ", lr " + std::to_string(optimizer.lr()) +
                    "); training stopped" +
                    (fs::exists(checkpoint_path) ? ", the last good checkpoint is " + checkpoint_path : std::string()));
      optimizer.optimizer->zero_grad();
      if (center_optimizer) center_optimizer->zero_grad();
      losses_now.total.backward();
      if (s.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), s.grad_clip);
      optimizer.optimizer->step();
      if (center_optimizer) {
        // BoT: the centres learn at their own rate, undoing the loss weight in their gradient.
        for (auto& p : loss->center()->parameters())
          if (p.grad().defined()) p.mutable_grad().mul_(1.0 / config.loss.center.weight);
        center_optimizer->step();
      }
      ++state.iteration;
      ++position;
      ++epoch_steps;
      const int64_t n = batch->images.size(0);
      window_images += n;
      epoch_images += n;
      images_trained += n;
      loss_sum += total;
      for (const auto& term : losses_now.terms) {
        auto it = std::find_if(term_sums.begin(), term_sums.end(), [&](const auto& t) { return t.first == term.first; });
        if (it == term_sums.end()) term_sums.emplace_back(term.first, term.second);
        else it->second += term.second;
      }
      for (const auto& stat : losses_now.stats) {
        auto it = std::find_if(term_sums.begin(), term_sums.end(), [&](const auto& t) { return t.first == stat.first; });
        if (it == term_sums.end()) term_sums.emplace_back(stat.first, stat.second);
        else it->second += stat.second;
      }

      if (position % s.log_period == 0 || position == batches) {
        const double elapsed = now() - window_start;
        IterationStats stats;
        stats.epoch = epoch + 1;
        stats.iteration = state.iteration;
        stats.batch = position;
        stats.batches = batches;
        stats.lr = optimizer.lr();
        stats.loss = total;
        for (const auto& term : losses_now.terms) stats.terms.push_back(term);
        for (const auto& stat : losses_now.stats) stats.terms.push_back(stat);
        stats.images_per_second = window_images / std::max(elapsed, 1e-9);
        stats.data_fraction = window_data / std::max(elapsed, 1e-9);
        const double per_step = (now() - epoch_start) / std::max<int64_t>(1, epoch_steps);
        stats.eta_seconds = per_step * ((batches - position) + (total_epochs - epoch - 1) * batches);
        std::string terms;
        for (const auto& t : stats.terms) terms += fmt::format(" {} {:.4f}", t.first, t.second);
        logger().info("epoch {}/{} batch {}/{} | loss {:.4f} |{} | lr {:.2e} | {:.0f} img/s | data {:.0f}% | eta {}",
                      stats.epoch, total_epochs, position, batches, stats.loss, terms, stats.lr,
                      stats.images_per_second, 100.0 * stats.data_fraction, utils::format_duration(stats.eta_seconds));
        recorder.iteration(stats);
        if (callbacks.on_iteration) callbacks.on_iteration(stats);
        window_start = now();
        window_images = 0;
        window_data = 0.0;
      }
      if (stop_requested()) {
        state.epoch = epoch;
        state.sampler = {sampler->state().seed, epoch, position};
        save_state(train_time + (now() - epoch_start));
        recorder.flush();
        logger().warn("interrupted at epoch {}, batch {}: checkpoint written to {}; continue with --resume",
                      epoch + 1, position, checkpoint_path);
        result.interrupted = true;
        result.epochs = epoch;
        result.train_seconds = train_time + (now() - epoch_start);
        result.images_per_second = images_trained / std::max(result.train_seconds, 1e-9);
        return result;
      }
    }
    const double epoch_seconds = now() - epoch_start;
    train_time += epoch_seconds;
    sampler->next_epoch();
    state.epoch = epoch + 1;
    state.sampler = sampler->state();

    EpochStats epoch_stats;
    epoch_stats.epoch = epoch + 1;
    epoch_stats.lr = optimizer.lr();
    epoch_stats.loss = loss_sum / std::max<int64_t>(1, epoch_steps);
    for (const auto& t : term_sums) epoch_stats.terms.emplace_back(t.first, t.second / std::max<int64_t>(1, epoch_steps));
    epoch_stats.images_per_second = epoch_images / std::max(epoch_seconds, 1e-9);
    epoch_stats.seconds = epoch_seconds;
    recorder.epoch(epoch_stats);
    if (callbacks.on_epoch) callbacks.on_epoch(epoch_stats);
    logger().info("epoch {} done in {} ({:.0f} img/s, {:.0f}% waiting for data)", epoch + 1,
                  utils::format_duration(epoch_seconds), epoch_stats.images_per_second,
                  100.0 * data_wait / std::max(epoch_seconds, 1e-9));

    const bool last = epoch + 1 == total_epochs;
    const bool evaluate_now = !targets.empty() && (last || (s.eval_period > 0 && (epoch + 1) % s.eval_period == 0));
    if (evaluate_now) {
      result.results = evaluate_targets(*model, config, targets);
      for (const auto& r : result.results) {
        recorder.evaluation(epoch + 1, r.first, r.second);
        if (callbacks.on_evaluation) callbacks.on_evaluation(epoch + 1, r.first, r.second);
      }
      const double metric = select_metric(s.best_metric, result.results.at(targets.front().name));
      if (metric > state.best_metric) {
        state.best_metric = metric;
        state.best_epoch = epoch + 1;
        models::save_weights(*model, (out / "model_best.pt").string());
        logger().info("new best {} {:.2f}% at epoch {}: model_best.pt", s.best_metric, 100.0 * metric, epoch + 1);
      }
    }
    if (last || (s.checkpoint_period > 0 && (epoch + 1) % s.checkpoint_period == 0)) save_state(train_time);
    recorder.flush();
  }
  result.epochs = state.epoch;
  result.best_metric = state.best_metric;
  result.best_epoch = state.best_epoch;
  result.final_weights = (out / "model_final.pt").string();
  models::save_weights(*model, result.final_weights);
  result.train_seconds = train_time;
  result.images_per_second = images_trained / std::max(train_time, 1e-9);
  logger().info("training done: {} epochs, {} of training at {:.0f} img/s ({} wall time{} with evaluation); final "
                "weights {}",
                result.epochs, utils::format_duration(train_time), result.images_per_second,
                utils::format_duration(now() - run_start), resume ? " of this process" : "", result.final_weights);
  if (state.best_epoch > 0)
    logger().info("best {} {:.2f}% at epoch {}", s.best_metric, 100.0 * state.best_metric, state.best_epoch);
  return result;
}

models::ReidModel load_model_for_inference(const Config& config, const std::string& weights) {
  const auto state = models::read_state_dict(weights);
  int64_t classes = 0;
  const auto it = state.find("classifier.weight");
  if (it != state.end()) {
    classes = it->second.size(0);
    if (config.model.classifier == "subcenter_arcface") classes /= config.model.subcenters;
  }
  auto model = build_model(config, classes, parse_device(config.device));
  const auto report = models::load_state_dict(*model, state, /*strict=*/false);
  if (!report.missing.empty() || !report.mismatched.empty())
    throw IOError(weights, "the weights do not fit model " + config.model.name + ": " + report.summary());
  if (!report.unexpected.empty()) logger().warn("weights {}: {}", weights, report.summary());
  model->eval();
  if (config.solver.channels_last) models::to_channels_last(*model);
  return model;
}

std::map<std::string, eval::EvalResult> test(const Config& config) {
  std::string weights = config.test.weights;
  if (weights.empty()) {
    for (const char* name : {"model_best.pt", "model_final.pt"}) {
      const fs::path candidate = fs::path(config.output_dir) / name;
      if (fs::exists(candidate)) {
        weights = candidate.string();
        break;
      }
    }
    if (weights.empty())
      throw ConfigError("test.weights", "no weights given and none found in " + config.output_dir +
                                            " (model_best.pt, model_final.pt): pass --weights");
  }
  auto model = load_model_for_inference(config, weights);
  logger().info("evaluating {} ({})", weights, config.model.name);
  const auto targets = load_datasets(config, /*sources=*/false);
  if (targets.empty()) throw ConfigError("data.targets", "no test dataset configured");
  for (const auto& d : targets) logger().info("\n{}", data::statistics_table(d));
  return evaluate_targets(*model, config, targets, config.output_dir);
}

eval::FeatureSet extract(const Config& config, const std::string& weights, const data::RecordList& records,
                         const std::string& output_dir, const std::string& name) {
  auto model = load_model_for_inference(config, weights);
  eval::ExtractOptions options;
  options.batch_size = config.test.batch_size;
  options.workers = config.data.workers;
  options.flip = config.test.flip;
  options.device = parse_device(config.device);
  options.channels_last = config.solver.channels_last;
  const auto set = eval::extract_features(*model, records, data::Transform(transform_options(config, false)), options);
  eval::save_feature_set(set, output_dir, name);
  return set;
}

}  // namespace reid::engine
