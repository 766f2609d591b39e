#include "reid/models/model.h"

#include <torch/torch.h>

#include "reid/models/mgn.h"
#include "reid/models/osnet.h"
#include "reid/models/resnet.h"
#include "reid/models/vit.h"
#include "reid/utils/strings.h"

namespace reid::models {

ReidOutput ReidModelImpl::forward(const torch::Tensor& images, const torch::Tensor& targets,
                                  const torch::Tensor& cameras) {
  (void)cameras;  // a CNN has no camera embedding
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3, "expected images [N, 3, H, W] (got ",
              images.sizes(), ")");
  return head_.forward(featuremaps(images), targets, is_training());
}

torch::Tensor ReidModelImpl::extract_features(const torch::Tensor& images) {
  TORCH_CHECK(!is_training(), "extract_features() needs eval mode: call model->eval() first");
  torch::NoGradGuard no_grad;
  return forward(images).feature;
}

void register_builtin_models(ModelRegistry& registry) {
  struct OSNetVariant {
    const char* name;
    double width;
    bool instance_norm;
  };
  for (const auto& variant : {OSNetVariant{"osnet_x1_0", 1.0, false},
                              OSNetVariant{"osnet_x0_75", 0.75, false},
                              OSNetVariant{"osnet_x0_5", 0.5, false},
                              OSNetVariant{"osnet_x0_25", 0.25, false},
                              OSNetVariant{"osnet_ibn_x1_0", 1.0, true}}) {
    registry.add(variant.name, [variant](const ModelOptions& options) -> ReidModel {
      return std::make_shared<OSNetImpl>(
          osnet_options(variant.width, variant.instance_norm, options), variant.name);
    });
  }
  for (const auto& [name, width] : std::vector<std::pair<std::string, double>>{
           {"osnet_ain_x1_0", 1.0}, {"osnet_ain_x0_75", 0.75}, {"osnet_ain_x0_5", 0.5}, {"osnet_ain_x0_25", 0.25}}) {
    registry.add(name, [name = name, width = width](const ModelOptions& options) -> ReidModel {
      return std::make_shared<OSNetImpl>(osnet_ain_options(width, options), name);
    });
  }
  registry.add("resnet50", [](const ModelOptions& options) -> ReidModel {
    return std::make_shared<ResNetImpl>(resnet50_options(false, options), "resnet50");
  });
  registry.add("resnet50_ibn_a", [](const ModelOptions& options) -> ReidModel {
    return std::make_shared<ResNetImpl>(resnet50_options(true, options), "resnet50_ibn_a");
  });
  registry.add("resnet50_nl", [](const ModelOptions& options) -> ReidModel {
    return std::make_shared<ResNetImpl>(resnet50_options(false, options, /*non_local=*/true), "resnet50_nl");
  });
  for (const char* size : {"base", "small"}) {
    const std::string name = std::string("vit_") + size + "_patch16";
    registry.add(name, [size, name](const ModelOptions& options) -> ReidModel {
      return std::make_shared<ViTImpl>(vit_options(size, options), name);
    });
  }
  registry.add("mgn_resnet50", [](const ModelOptions& options) -> ReidModel {
    return std::make_shared<MGNImpl>(MGNOptions().head(options.head()), "mgn_resnet50");
  });
}

const ModelRegistry& builtin_models() {
  static const ModelRegistry registry = [] {
    ModelRegistry r("model");
    register_builtin_models(r);
    return r;
  }();
  return registry;
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
}

int64_t count_parameters(const torch::nn::Module& module, const std::string& exclude_prefix) {
  int64_t total = 0;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!exclude_prefix.empty() && utils::starts_with(item.key(), exclude_prefix)) continue;
    total += item.value().numel();
  }
  return total;
}

}  // namespace reid::models
