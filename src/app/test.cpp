#include "reid/app/test.h"

#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/deploy/extract.h"
#include "reid/deploy/model.h"
#include "reid/engine/builders.h"
#include "reid/engine/evaluation.h"

namespace reid::app {

std::map<std::string, eval::EvalResult> test(const Config& config, const engine::Registries& registries) {
  engine::check_names(config, registries, /*training=*/false);
  std::string weights = config.test.weights;
  if (weights.empty()) {
    weights = deploy::trained_weights(config.output_dir);
    if (weights.empty())
      throw ConfigError("test.weights", "no weights given and none found in " + config.output_dir +
                                            " (model_best.pt, model_final.pt): pass --weights");
  }
  auto model = deploy::load_model_for_inference(config, weights, registries.models);
  logger().info("evaluating {} ({})", weights, config.model.name);
  const auto targets = engine::load_datasets(config, /*sources=*/false, registries.datasets);
  if (targets.empty()) throw ConfigError("data.targets", "no test dataset configured");
  for (const auto& d : targets) logger().info("\n{}", data::statistics_table(d));
  return engine::evaluate_targets(*model, targets, engine::evaluation_options(config, parse_device(config.device)), config.output_dir);
}

eval::FeatureSet extract(const Config& config, const std::string& weights, const data::RecordList& records,
                         const std::string& output_dir, const std::string& name, const engine::Registries& registries) {
  auto model = deploy::load_model_for_inference(config, weights, registries.models);
  const auto options = engine::evaluation_options(config, parse_device(config.device));
  const auto set = deploy::extract_features(*model, records, data::Transform(options.transform), options.extract);
  eval::save_feature_set(set, output_dir, name);
  return set;
}

}  // namespace reid::app
