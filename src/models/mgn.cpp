#include "reid/models/mgn.h"

#include <torch/torch.h>

#include "reid/models/resnet.h"
#include "reid/utils/strings.h"

namespace reid::models {

std::vector<std::pair<int64_t, int64_t>> stripe_rows(int64_t rows, int64_t parts) {
  TORCH_CHECK(parts >= 1 && rows >= parts, "MGN: a map of ", rows, " rows cannot be cut into ", parts,
              " stripes (use taller images)");
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t i = 0; i < parts; ++i) out.emplace_back(i * rows / parts, ((i + 1) * rows + parts - 1) / parts);
  return out;
}

MGNImpl::MGNImpl(const MGNOptions& o, const std::string& name) : ReidModelImpl(name), options(o) {
  TORCH_CHECK(o.reduction_dim() > 0, "MGN: reduction_dim must be > 0");
  const auto& l = o.layers();
  TORCH_CHECK(l.size() == 4 && l[0] >= 1 && l[1] >= 1 && l[2] >= 2 && l[3] >= 1,
              "MGN: layers must be 4 stage depths with at least 2 blocks in layer3");
  for (int64_t p : o.parts()) TORCH_CHECK(p >= 1 && p <= 8, "MGN: a part branch needs 1 to 8 stripes (got ", p, ")");
  conv1_ = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
  bn1_ = register_module("bn1", BatchNorm2d(64));
  maxpool_ = register_module("maxpool", torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
  int64_t in_planes = 64;
  layer1_ = register_module("layer1", resnet_stage(in_planes, 64, l[0], 1, o.ibn()));
  layer2_ = register_module("layer2", resnet_stage(in_planes, 128, l[1], 2, o.ibn()));
  layer3_ = register_module("layer3", resnet_stage(in_planes, 256, 1, 2, o.ibn()));  // block 0 only
  const int64_t trunk_planes = in_planes;
  // Branch 1 is global (layer4 stride 2); then one branch per entry of parts (stride 1).
  const std::size_t branches = 1 + o.parts().size();
  for (std::size_t b = 0; b < branches; ++b) {
    int64_t planes = trunk_planes;
    auto rest3 = resnet_stage(planes, 256, l[2] - 1, 1, o.ibn());
    auto l4 = resnet_stage(planes, 512, l[3], b == 0 ? 2 : 1, false);
    register_module("b" + std::to_string(b + 1), torch::nn::ModuleList(rest3, l4));
    branches_.emplace_back(rest3, l4);
  }
  const int64_t width = 512 * BottleneckImpl::kExpansion;
  init_resnet_weights(*this);  // the ResNet part
  pool_ = register_module("global_pool", GlobalPooling(o.head().pooling(), o.head().gem_p()));

  names_.push_back("global");
  for (int64_t p : o.parts()) names_.push_back("part" + std::to_string(p) + "_global");
  for (int64_t p : o.parts())
    for (int64_t i = 1; i <= p; ++i) names_.push_back("part" + std::to_string(p) + "_" + std::to_string(i));
  torch::nn::ModuleList reductions, classifiers;
  for (std::size_t i = 0; i < names_.size(); ++i) {
    auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(width, o.reduction_dim(), 1).bias(false));
    BatchNorm2d bn(o.reduction_dim());
    {
      torch::NoGradGuard no_grad;
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanIn, torch::kReLU);
      bn->weight.fill_(1.0);
      bn->bias.zero_();
    }
    reductions_.push_back(torch::nn::Sequential(conv, bn, torch::nn::ReLU()));
    reductions->push_back(reductions_.back());
    if (o.head().num_classes() > 0) {
      const auto& h = o.head();
      classifiers_.push_back(Classifier(ClassifierOptions(o.reduction_dim(), h.num_classes())
                                            .type(h.classifier())
                                            .scale(h.scale())
                                            .margin(h.margin())
                                            .subcenters(h.subcenters())));
      classifiers->push_back(classifiers_.back());
    }
  }
  register_module("reduction", reductions);
  if (!classifiers_.empty()) register_module("classifier", classifiers);
}

torch::Tensor MGNImpl::trunk(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3, "expected images [N, 3, H, W] (got ", images.sizes(), ")");
  auto x = maxpool_->forward(bn1_->forward(conv1_->forward(images)).relu_());
  return layer3_->forward(layer2_->forward(layer1_->forward(x)));
}

torch::Tensor MGNImpl::featuremaps(const torch::Tensor& images) {
  auto& [rest3, l4] = branches_.front();
  return l4->forward(rest3->forward(trunk(images)));
}

ReidOutput MGNImpl::forward(const torch::Tensor& images, const torch::Tensor& targets, const torch::Tensor& cameras) {
  (void)cameras;  // no camera embedding
  const auto x = trunk(images);
  std::vector<torch::Tensor> maps;
  for (auto& [rest3, l4] : branches_) maps.push_back(l4->forward(rest3->forward(x)));
  // Pooled features in the order of names_: the branches' global features, then the stripes.
  std::vector<torch::Tensor> pooled;
  for (const auto& map : maps) pooled.push_back(pool_->forward(map));
  for (std::size_t b = 0; b < options.parts().size(); ++b) {
    const auto& map = maps[b + 1];
    for (const auto& [begin, end] : stripe_rows(map.size(2), options.parts()[b]))
      pooled.push_back(pool_->forward(map.slice(2, begin, end)));
  }
  std::vector<torch::Tensor> reduced;
  for (std::size_t i = 0; i < pooled.size(); ++i) {
    const auto v = pooled[i].view({-1, pooled[i].size(1), 1, 1});
    reduced.push_back(reductions_[i]->forward(v).flatten(1));
  }
  ReidOutput out;
  out.feature = torch::cat(reduced, 1);
  const std::size_t globals = 1 + options.parts().size();
  for (std::size_t i = 0; i < globals; ++i) out.embeddings.emplace_back(names_[i], reduced[i]);
  if (!is_training()) return out;
  for (std::size_t i = 0; i < classifiers_.size(); ++i)
    out.class_logits.emplace_back(names_[i], classifiers_[i]->forward(reduced[i], targets));
  return out;
}

int64_t MGNImpl::feature_dim() const { return options.reduction_dim() * static_cast<int64_t>(names_.size()); }

std::vector<NamedWidth> MGNImpl::embedding_dims() const {
  std::vector<NamedWidth> out;
  for (std::size_t i = 0; i < 1 + options.parts().size(); ++i) out.emplace_back(names_[i], options.reduction_dim());
  return out;
}

void MGNImpl::adapt_state_dict(std::map<std::string, torch::Tensor>& state) const {
  // A plain ResNet-50 (torchvision's names, or fast-reid's under "backbone."): layer3's blocks
  // 1-5 and layer4 go into every branch; MGN's own keys are left as they are.
  std::map<std::string, torch::Tensor> out;
  for (const auto& [key, value] : state) {
    std::string name = utils::starts_with(key, "backbone.") ? key.substr(9) : key;
    std::string suffix;
    if (utils::starts_with(name, "layer4.")) {
      suffix = "1." + name.substr(7);
    } else if (utils::starts_with(name, "layer3.") && !utils::starts_with(name, "layer3.0.")) {
      const auto dot = name.find('.', 7);
      const int block = std::stoi(name.substr(7, dot - 7));
      suffix = "0." + std::to_string(block - 1) + name.substr(dot);
    }
    if (suffix.empty()) {
      out[name] = value;
      continue;
    }
    for (std::size_t b = 0; b < branches_.size(); ++b) out["b" + std::to_string(b + 1) + "." + suffix] = value;
  }
  state = std::move(out);
}

}  // namespace reid::models
