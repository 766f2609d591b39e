#include "reid/engine/inference.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/engine/builders.h"
#include "reid/eval/visualize.h"
#include "reid/models/weights.h"
#include "reid/utils/strings.h"

namespace fs = std::filesystem;

namespace reid::engine {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

eval::FeatureSet extract_features(models::ReidModelImpl& model, const data::RecordList& records,
                                  const data::Transform& transform, const deploy::ExtractOptions& options,
                                  Distributed& dist) {
  if (!dist.is_distributed()) return deploy::extract_features(model, records, transform, options);
  // Contiguous shards, so that concatenating them in rank order restores the record order.
  const int64_t n = static_cast<int64_t>(records->size()), world = dist.world_size(), rank = dist.rank();
  const int64_t begin = n * rank / world, end = n * (rank + 1) / world;
  const auto shard = data::make_record_list(
      std::vector<data::ImageRecord>(records->begin() + begin, records->begin() + end));
  auto part = deploy::extract_features(model, shard, transform, options);
  return deploy::labelled_features(dist.gather_rows(part.features.to(dist.device())).to(torch::kCPU), *records);
}

std::map<std::string, eval::EvalResult> evaluate_targets(models::ReidModelImpl& model,
                                                         const std::vector<data::DatasetSplits>& targets,
                                                         const EvaluationOptions& options,
                                                         const std::string& output_dir, Distributed* dist) {
  Distributed single(options.extract.device);
  Distributed& group = dist ? *dist : single;
  std::map<std::string, eval::EvalResult> results;
  const data::Transform transform(options.transform);
  for (const auto& target : targets) {
    const double start = now();
    const auto query = extract_features(model, data::make_record_list(target.query), transform, options.extract, group);
    const auto gallery =
        extract_features(model, data::make_record_list(target.gallery), transform, options.extract, group);
    if (!group.is_main()) continue;
    const double extracted = now();
    auto retrieval = options.retrieval;
    retrieval.cuhk03_single_shot = std::count(options.single_gallery_shot.begin(), options.single_gallery_shot.end(),
                                              target.name) > 0;
    const auto result = eval::evaluate_retrieval(query, gallery, retrieval);
    logger().info("{}: {} (features {:.1f}s, metrics {:.1f}s)", target.name, result.summary(options.ranks),
                  extracted - start, now() - extracted);
    if (!output_dir.empty() && options.save_features) {
      const std::string dir = (fs::path(output_dir) / "features" / target.name).string();
      eval::save_feature_set(query, dir, "query");
      eval::save_feature_set(gallery, dir, "gallery");
      logger().info("{}: features written to {}", target.name, dir);
    }
    if (!output_dir.empty() && options.visualize > 0) {
      const auto prepared = eval::prepare_features(query, gallery, retrieval);
      const torch::Tensor &q = prepared.first, &g = prepared.second;
      std::unique_ptr<eval::KReciprocalReranker> reranker;
      if (retrieval.rerank)
        reranker = std::make_unique<eval::KReciprocalReranker>(q, g, retrieval.metric, retrieval.rerank_options);
      eval::RankedListOptions ranked;
      ranked.topk = options.visualize_topk;
      const std::string dir = (fs::path(output_dir) / "ranked_lists" / target.name).string();
      const auto files = eval::write_ranked_lists(
          [&](int64_t i) {
            return reranker ? reranker->rows(i, i + 1)[0].clone()
                            : eval::compute_distance(q.narrow(0, i, 1), g, retrieval.metric)[0];
          },
          query, gallery, eval::worst_queries(result, options.visualize), dir, ranked);
      logger().info("{}: {} ranked lists of the worst queries in {}", target.name, files.size(), dir);
    }
    results.emplace(target.name, result);
  }
  return results;
}

models::ReidModel load_model_for_inference(const Config& config, const std::string& weights,
                                           const Registries& registries) {
  const auto state = models::read_state_dict(weights);
  int64_t classes = 0;
  const auto it = state.find("classifier.weight");
  if (it != state.end()) {
    classes = it->second.size(0);
    if (config.model.classifier == "subcenter_arcface") classes /= config.model.subcenters;
  }
  // The camera embedding (SIE) has as many rows as the training set had cameras (a clip model
  // holds it under "backbone.").
  auto sie = state.find("sie_embed");
  if (sie == state.end()) sie = state.find("backbone.sie_embed");
  const int64_t cameras = sie != state.end() && sie->second.dim() >= 1 ? sie->second.size(0) : 0;
  if (config.model.sie && cameras == 0)
    throw IOError(weights, "model.sie is on but the weights hold no camera embedding (sie_embed)");
  const auto device = parse_device(config.device);
  auto model = build_model(config, classes, device, registries.models, cameras);
  // A clip model (trained on a video set) keeps its image network under "backbone.": weights
  // with such keys that the image network itself does not have are a clip model's.
  const auto has_backbone_key = [](const auto& names) {
    return std::any_of(names.begin(), names.end(), [](const auto& n) { return utils::starts_with(n, "backbone."); });
  };
  std::vector<std::string> weight_names, model_names;
  for (const auto& entry : state) weight_names.push_back(entry.first);
  for (const auto& entry : model->named_parameters()) model_names.push_back(entry.key());
  for (const auto& entry : model->named_buffers()) model_names.push_back(entry.key());
  if (has_backbone_key(weight_names) && !has_backbone_key(model_names))
    model = build_model(config, classes, device, registries.models, cameras, /*video=*/true);
  const auto report = models::load_state_dict(*model, state, /*strict=*/false);
  if (!report.missing.empty() || !report.mismatched.empty())
    throw IOError(weights, "the weights do not fit model " + config.model.name + ": " + report.summary());
  if (!report.unexpected.empty()) logger().warn("weights {}: {}", weights, report.summary());
  try {
    models::check_finite(*model, "the model");
  } catch (const Error& e) {
    throw IOError(weights, e.what());
  }
  model->eval();
  if (config.solver.channels_last) models::to_channels_last(*model);
  return model;
}

std::map<std::string, eval::EvalResult> test(const Config& config, const Registries& registries) {
  check_names(config, registries, /*training=*/false);
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
  auto model = load_model_for_inference(config, weights, registries);
  logger().info("evaluating {} ({})", weights, config.model.name);
  const auto targets = load_datasets(config, /*sources=*/false, registries.datasets);
  if (targets.empty()) throw ConfigError("data.targets", "no test dataset configured");
  for (const auto& d : targets) logger().info("\n{}", data::statistics_table(d));
  return evaluate_targets(*model, targets, evaluation_options(config, parse_device(config.device)), config.output_dir);
}

eval::FeatureSet extract(const Config& config, const std::string& weights, const data::RecordList& records,
                         const std::string& output_dir, const std::string& name, const Registries& registries) {
  auto model = load_model_for_inference(config, weights, registries);
  const auto options = evaluation_options(config, parse_device(config.device));
  const auto set = deploy::extract_features(*model, records, data::Transform(options.transform), options.extract);
  eval::save_feature_set(set, output_dir, name);
  return set;
}

}  // namespace reid::engine
