#include "reid/config/config.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "reid/core/error.h"
#include "reid/data/sampler.h"
#include "reid/data/transforms.h"
#include "reid/models/heads.h"
#include "reid/models/temporal.h"
#include "reid/utils/strings.h"

namespace reid::config {
namespace {

template <class T>
std::string to_text(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

void require(bool condition, const std::string& key, const std::string& message) {
  if (!condition) throw ConfigError(key, message);
}

template <class T>
void require_at_least(const std::string& key, T value, T minimum) {
  require(value >= minimum, key, "must be >= " + to_text(minimum) + " (got " + to_text(value) + ")");
}

void require_positive(const std::string& key, double value) {
  require(std::isfinite(value) && value > 0.0, key, "must be > 0 (got " + to_text(value) + ")");
}

void require_range(const std::string& key, double value, double low, double high) {
  require(std::isfinite(value) && value >= low && value <= high, key,
          "must be in [" + to_text(low) + ", " + to_text(high) + "] (got " + to_text(value) + ")");
}

void require_choice(const std::string& key, const std::string& value,
                    const std::vector<std::string>& choices) {
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return;
  std::string message = "'" + value + "' is not one of " + utils::join(choices);
  const std::string suggestion = utils::closest_match(value, choices);
  if (!suggestion.empty()) message += " (did you mean '" + suggestion + "'?)";
  throw ConfigError(key, message);
}

void require_unique(const std::string& key, const std::vector<std::string>& values) {
  std::set<std::string> seen;
  for (const auto& value : values)
    require(seen.insert(value).second, key, "'" + value + "' is listed twice");
}

void validate_model(const ModelConfig& m) {
  require(!m.name.empty(), "model.name", "must name a network");
  require(m.last_stride == 1 || m.last_stride == 2, "model.last_stride",
          "must be 1 or 2 (got " + to_text(m.last_stride) + ")");
  require_at_least("model.streams", m.streams, 1);
  require_at_least("model.feature_dim", m.feature_dim, 0);
  require_range("model.patch_stride", m.patch_stride, 0, 16);
  require_range("model.drop_path", m.drop_path, 0.0, 0.99);
  require_range("model.sie_coefficient", m.sie_coefficient, 0.0, 100.0);
  require_at_least("model.jpm_shift", m.jpm_shift, 1);
  require_at_least("model.jpm_shuffle_groups", m.jpm_shuffle_groups, 1);
  require_at_least("model.jpm_groups", m.jpm_groups, 1);
  require_choice("model.temporal_pooling", m.temporal_pooling, models::temporal_pooling_registry().names());
  require_choice("model.pooling", m.pooling, models::pooling_registry().names());
  require_positive("model.gem_p", m.gem_p);
  require_choice("model.neck", m.neck, models::neck_registry().names());
  require_choice("model.neck_feat", m.neck_feat, models::neck_feat_registry().names());
  require_choice("model.classifier", m.classifier, models::classifier_registry().names());
  require_positive("model.scale", m.scale);
  require_range("model.margin", m.margin, 0.0, 2.0);
  require_at_least("model.subcenters", m.subcenters, 1);
}

void validate_data(const DataConfig& d, const SamplerConfig& s) {
  require(!d.sources.empty(), "data.sources", "needs at least one training dataset");
  require_unique("data.sources", d.sources);
  require_unique("data.targets", d.targets);
  require_range("data.height", d.height, 16, 4096);
  require_range("data.width", d.width, 8, 4096);
  require_unique("data.transforms", d.transforms);
  for (std::size_t i = 0; i < d.transforms.size(); ++i) {
    const std::string key = "data.transforms[" + std::to_string(i) + "]";
    require_choice(key, d.transforms[i], data::augment_registry().names());
    require(d.transforms[i] != "random_erasing" || i + 1 == d.transforms.size(), key,
            "random_erasing acts on the normalised tensor, so it must be the last transform");
  }
  require_range("data.flip_prob", d.flip_prob, 0.0, 1.0);
  require_at_least("data.pad", d.pad, 0);
  const auto& cj = d.color_jitter;
  require_range("data.color_jitter.prob", cj.prob, 0.0, 1.0);
  require_range("data.color_jitter.brightness", cj.brightness, 0.0, 1.0);
  require_range("data.color_jitter.contrast", cj.contrast, 0.0, 1.0);
  require_range("data.color_jitter.saturation", cj.saturation, 0.0, 1.0);
  require_range("data.color_jitter.hue", cj.hue, 0.0, 0.5);
  const auto& er = d.erasing;
  require_range("data.erasing.prob", er.prob, 0.0, 1.0);
  require_range("data.erasing.min_area", er.min_area, 0.0, 1.0);
  require_range("data.erasing.max_area", er.max_area, er.min_area, 1.0);
  require_range("data.erasing.min_aspect", er.min_aspect, 1e-3, 1.0);
  require(er.value.size() == 3, "data.erasing.value", "needs 3 values (RGB)");
  require(d.mean.size() == 3, "data.mean", "needs 3 values (RGB)");
  require(d.std.size() == 3, "data.std", "needs 3 values (RGB)");
  for (double v : d.std) require_positive("data.std", v);
  require_range("data.batch_size", d.batch_size, 1, 65536);
  require_range("data.workers", d.workers, -1, 256);
  require_range("data.prefetch", d.prefetch, 1, 1024);
  require_at_least("data.max_image_pixels", d.max_image_pixels, 1);
  require_range("data.cuhk03.split_id", d.cuhk03.split_id, 0, 19);
  const auto& sy = d.synthetic;
  require_at_least("data.synthetic.test_ids", sy.test_ids, 1);
  require_range("data.synthetic.height", sy.height, 32, 1024);
  require_range("data.synthetic.width", sy.width, 16, 1024);
  require_range("data.synthetic.train_ids", sy.train_ids, 2, 100000);
  require_range("data.synthetic.images_per_camera", sy.images_per_camera, 1, 1000);
  require_range("data.synthetic.cameras", sy.cameras, 2, 100);
  require_at_least("data.synthetic.seed", sy.seed, 0);
  require_range("data.synthetic.tracklets_per_camera", sy.tracklets_per_camera, 2, 1000);
  require_range("data.synthetic.frames", sy.frames, 1, 10000);
  require_range("data.seq_len", d.seq_len, 1, 1024);
  require_choice("data.train_sampling", d.train_sampling, {"random", "evenly", "consecutive"});
  require_choice("data.test_sampling", d.test_sampling, {"evenly", "all"});
  const auto& vd = d.video;
  require_range("data.video.num_splits", vd.num_splits, 1, 1000);
  require_range("data.video.split_id", vd.split_id, 0, vd.num_splits - 1);
  require_at_least("data.video.split_seed", vd.split_seed, 0);
  require_range("data.video.min_frames", vd.min_frames, 0, 100000);

  // sampler.name is a name of the run's sampler registry, checked with the other registered
  // names (engine::check_names).
  require_range("sampler.num_instances", s.num_instances, 1, 4096);
  if (s.name != "random") {
    require(d.batch_size % s.num_instances == 0, "data.batch_size",
            "must be a multiple of sampler.num_instances (" + to_text(s.num_instances) +
                ") for the " + s.name + " sampler (got " + to_text(d.batch_size) + ")");
    require(d.batch_size / s.num_instances >= 2, "data.batch_size",
            "the " + s.name + " sampler needs at least 2 identities per batch (batch_size / "
            "num_instances = " + to_text(d.batch_size / s.num_instances) + ")");
  }
}

void validate_loss(const LossConfig& l, const SamplerConfig& s) {
  require(!l.names.empty(), "loss.names", "needs at least one loss term");
  require_unique("loss.names", l.names);
  // The names themselves are checked against the loss registry the run uses (engine::check_names).
  require_at_least("loss.ce.weight", l.ce.weight, 0.0);
  require_range("loss.ce.epsilon", l.ce.epsilon, 0.0, 0.999);
  require_at_least("loss.triplet.weight", l.triplet.weight, 0.0);
  require_at_least("loss.triplet.margin", l.triplet.margin, 0.0);
  require_choice("loss.triplet.metric", l.triplet.metric, {"euclidean", "cosine"});
  require_at_least("loss.center.weight", l.center.weight, 0.0);
  require_at_least("loss.wrt.weight", l.wrt.weight, 0.0);
  require_choice("loss.wrt.metric", l.wrt.metric, {"euclidean", "cosine"});
  require_positive("loss.center.lr", l.center.lr);
  for (const char* metric_loss : {"triplet", "wrt"}) {
    if (std::find(l.names.begin(), l.names.end(), metric_loss) == l.names.end()) continue;
    const std::string name = metric_loss;
    require(s.name != "random", "loss.names",
            "the " + name + " loss needs positives in every batch: set sampler.name to identity or "
            "cross_camera");
    require(s.num_instances >= 2, "sampler.num_instances",
            "the " + name + " loss needs at least 2 images per identity (got " +
                to_text(s.num_instances) + ")");
  }
  const bool center = std::find(l.names.begin(), l.names.end(), "center") != l.names.end();
  if (center) require_positive("loss.center.weight", l.center.weight);
  // A block of its own belongs to a term in loss.names (its keys are the term's to check, when
  // the loss set builds it); any other is a misspelt section or a term left out of the list.
  for (const auto& block : l.terms.blocks) {
    if (std::find(l.names.begin(), l.names.end(), block.first) != l.names.end()) continue;
    std::vector<std::string> candidates = {"ce", "triplet", "center", "wrt"};
    candidates.insert(candidates.end(), l.names.begin(), l.names.end());
    const std::string suggestion = utils::closest_match(block.first, candidates);
    throw ConfigError("loss." + block.first,
                      "unknown key: not a term in loss.names (" + utils::join(l.names) + ")" +
                          (suggestion.empty() ? std::string("; add the term to loss.names or remove the block")
                                              : " (did you mean 'loss." + suggestion + "'?)"));
  }
}

void validate_solver(const SolverConfig& s) {
  // solver.optimizer and solver.scheduler are names of the engine's registries, checked with
  // the other registered names (engine::check_names).
  require_positive("solver.base_lr", s.base_lr);
  require_at_least("solver.weight_decay", s.weight_decay, 0.0);
  require_positive("solver.bias_lr_factor", s.bias_lr_factor);
  require_range("solver.momentum", s.momentum, 0.0, 1.0);
  require_range("solver.adam_beta1", s.adam_beta1, 0.0, 0.999999);
  require_range("solver.adam_beta2", s.adam_beta2, 0.0, 0.999999);
  for (std::size_t i = 0; i < s.milestones.size(); ++i) {
    const std::string key = "solver.milestones[" + std::to_string(i) + "]";
    require_at_least(key, s.milestones[i], 1);
    require(i == 0 || s.milestones[i] > s.milestones[i - 1], key,
            "milestones must be strictly increasing");
  }
  require_positive("solver.gamma", s.gamma);
  require_at_least("solver.flat_epochs", s.flat_epochs, 0);
  require_at_least("solver.min_lr", s.min_lr, 0.0);
  require_range("solver.max_epochs", s.max_epochs, 1, 1000000);
  require_at_least("solver.warmup_epochs", s.warmup_epochs, 0);
  require(s.warmup_epochs < s.max_epochs || s.warmup_epochs == 0, "solver.warmup_epochs",
          "must be shorter than solver.max_epochs (" + to_text(s.max_epochs) + ")");
  require_range("solver.warmup_factor", s.warmup_factor, 1e-8, 1.0);
  require_at_least("solver.fixbase_epochs", s.fixbase_epochs, 0);
  require(s.fixbase_epochs == 0 || !s.open_layers.empty(), "solver.open_layers",
          "must name the layers trained during solver.fixbase_epochs");
  require_at_least("solver.grad_clip", s.grad_clip, 0.0);
  require_choice("solver.precision", s.precision, {"float32", "float64"});
  require_choice("solver.amp_dtype", s.amp_dtype, {"bfloat16", "float16"});
  require_at_least("solver.eval_period", s.eval_period, 0);
  // solver.best_metric is a name of the run's metric registry (engine::check_names).
  require_at_least("solver.checkpoint_period", s.checkpoint_period, 0);
  require_at_least("solver.log_period", s.log_period, 1);
}

void validate_test(const TestConfig& t) {
  require_range("test.batch_size", t.batch_size, 1, 65536);
  require_choice("test.metric", t.metric, {"euclidean", "cosine"});
  require_at_least("test.rerank_k1", t.rerank_k1, 1);
  require_at_least("test.rerank_k2", t.rerank_k2, 1);
  require_range("test.rerank_lambda", t.rerank_lambda, 0.0, 1.0);
  require_at_least("test.query_expansion", t.query_expansion, 0);
  require_at_least("test.max_rank", t.max_rank, 1);
  require_choice("test.average_precision", t.average_precision, {"hits", "trapezoid"});
  for (std::size_t i = 0; i < t.ranks.size(); ++i)
    require(t.ranks[i] >= 1 && t.ranks[i] <= t.max_rank,
            "test.ranks[" + std::to_string(i) + "]",
            "must be in [1, test.max_rank = " + to_text(t.max_rank) + "] (got " +
                to_text(t.ranks[i]) + ")");
  require_at_least("test.visualize", t.visualize, 0);
  require_at_least("test.visualize_topk", t.visualize_topk, 1);
}

}  // namespace

void Config::validate() const {
  validate_model(model);
  validate_data(data, sampler);
  validate_loss(loss, sampler);
  validate_solver(solver);
  validate_test(test);
  require_choice("distributed.backend", distributed.backend, {"auto", "tcp", "nccl"});
  require_at_least("distributed.timeout", distributed.timeout, 1);
  require_positive("distributed.bucket_mb", distributed.bucket_mb);
  require(!output_dir.empty(), "output_dir", "must not be empty");
  require_at_least("seed", seed, 0);
  require_range("threads", threads, 0, 1024);
  const bool device_ok =
      device == "cpu" || device == "cuda" ||
      (utils::starts_with(device, "cuda:") && device.size() > 5 &&
       device.find_first_not_of("0123456789", 5) == std::string::npos);
  require(device_ok, "device", "'" + device + "' is not a device (use cpu, cuda or cuda:N)");
}

}  // namespace reid::config
