#include "reid/deploy/model.h"

#include <algorithm>
#include <filesystem>

#include <torch/torch.h>

#include "reid/config/options.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/models/temporal.h"
#include "reid/models/weights.h"
#include "reid/utils/strings.h"

namespace reid::deploy {

models::ReidModel build_model(const Config& config, int64_t num_classes, const torch::Device& device,
                              const models::ModelRegistry& models, int64_t cameras, bool video) {
  if (!models.contains(config.model.name))
    throw ConfigError("model.name", models.unknown_message(config.model.name));
  if (config.model.sie && cameras <= 0)
    throw ConfigError("model.sie", "the camera embedding needs the number of cameras (the training set's)");
  const auto options = config::model_options(config, num_classes, cameras);
  models::ReidModel model =
      video ? models::make_temporal_model(config.model.name, options,
                                          models::parse_temporal_pooling(config.model.temporal_pooling), models)
            : models.create(config.model.name, options);
  if (!config.model.pretrained.empty())
    models::load_weights(*model, config.model.pretrained, config.model.pretrained_strict);
  model->to(device);
  const auto dtype = config::model_dtype(config);
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

models::ReidModel load_model_for_inference(const Config& config, const std::string& weights,
                                           const models::ModelRegistry& models) {
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
  auto model = build_model(config, classes, device, models, cameras);
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
    model = build_model(config, classes, device, models, cameras, /*video=*/true);
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

std::string trained_weights(const std::string& run_dir) {
  for (const char* name : {"model_best.pt", "model_final.pt"}) {
    const std::filesystem::path candidate = std::filesystem::path(run_dir) / name;
    if (std::filesystem::is_regular_file(candidate)) return candidate.string();
  }
  return "";
}

}  // namespace reid::deploy
