#include "reid/models/heads.h"

#include <cmath>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/strings.h"

namespace reid::models {
namespace {

template <class E>
Registry<E()> kinds(const std::string& what, const std::vector<std::pair<std::string, E>>& choices) {
  Registry<E()> registry(what);
  for (const auto& [name, value] : choices) registry.add(name, [value = value] { return value; });
  return registry;
}

}  // namespace

const Registry<Pooling()>& pooling_registry() {
  static const auto registry =
      kinds<Pooling>("pooling", {{"avg", Pooling::kAvg}, {"max", Pooling::kMax}, {"gem", Pooling::kGeM}});
  return registry;
}

const Registry<Neck()>& neck_registry() {
  static const auto registry = kinds<Neck>("neck", {{"none", Neck::kNone}, {"bnneck", Neck::kBNNeck}});
  return registry;
}

const Registry<NeckFeat()>& neck_feat_registry() {
  static const auto registry =
      kinds<NeckFeat>("neck feature", {{"before", NeckFeat::kBefore}, {"after", NeckFeat::kAfter}});
  return registry;
}

const Registry<ClassifierType()>& classifier_registry() {
  static const auto registry = kinds<ClassifierType>("classifier", {{"linear", ClassifierType::kLinear},
                                                                    {"arcface", ClassifierType::kArcFace},
                                                                    {"cosface", ClassifierType::kCosFace},
                                                                    {"circle", ClassifierType::kCircle},
                                                                    {"subcenter_arcface", ClassifierType::kSubcenterArcFace}});
  return registry;
}

Pooling parse_pooling(const std::string& name) { return pooling_registry().create(name); }
Neck parse_neck(const std::string& name) { return neck_registry().create(name); }
NeckFeat parse_neck_feat(const std::string& name) { return neck_feat_registry().create(name); }
ClassifierType parse_classifier(const std::string& name) { return classifier_registry().create(name); }

// ---- pooling ------------------------------------------------------------------------------------

GeMPoolingImpl::GeMPoolingImpl(double p, double eps) : eps_(eps) {
  TORCH_CHECK(p > 0, "GeM exponent must be positive (got ", p, ")");
  this->p = register_parameter("p", torch::full({1}, p));
}

torch::Tensor GeMPoolingImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, "GeM pooling expects [N, C, H, W] (got ", x.sizes(), ")");
  return x.clamp_min(eps_).pow(p).mean({2, 3}).pow(p.reciprocal());
}

GlobalPoolingImpl::GlobalPoolingImpl(Pooling kind, double gem_p) : kind_(kind) {
  if (kind_ == Pooling::kGeM) gem_ = register_module("gem", GeMPooling(gem_p));
}

torch::Tensor GlobalPoolingImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, "global pooling expects [N, C, H, W] (got ", x.sizes(), ")");
  switch (kind_) {
    case Pooling::kAvg: return x.mean({2, 3});
    case Pooling::kMax: return std::get<0>(x.flatten(2).max(2));
    case Pooling::kGeM: return gem_->forward(x);
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled pooling kind");
}

// ---- classifiers --------------------------------------------------------------------------------

ClassifierImpl::ClassifierImpl(const ClassifierOptions& options_) : options(options_) {
  TORCH_CHECK(options.in_features() > 0 && options.num_classes() > 0,
              "classifier needs positive in_features and num_classes (got ",
              options.in_features(), ", ", options.num_classes(), ")");
  const int64_t rows = options.type() == ClassifierType::kSubcenterArcFace
                           ? options.num_classes() * options.subcenters()
                           : options.num_classes();
  weight = register_parameter("weight", torch::empty({rows, options.in_features()}));
  if (options.type() == ClassifierType::kLinear && options.bias())
    bias = register_parameter("bias", torch::empty({options.num_classes()}));
  reset_parameters();
}

void ClassifierImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  weight.normal_(0.0, options.init_std());
  if (bias.defined()) bias.zero_();
}

torch::Tensor ClassifierImpl::cosine(const torch::Tensor& x) const {
  namespace F = torch::nn::functional;
  const auto norm = F::NormalizeFuncOptions().dim(1).eps(1e-12);
  auto cos = F::linear(F::normalize(x, norm), F::normalize(weight, norm));
  if (options.type() == ClassifierType::kSubcenterArcFace)
    cos = std::get<0>(cos.view({x.size(0), options.num_classes(), options.subcenters()}).max(2));
  return cos;
}

torch::Tensor ClassifierImpl::forward(const torch::Tensor& x, const torch::Tensor& targets) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == options.in_features(), "classifier expects [N, ",
              options.in_features(), "] features (got ", x.sizes(), ")");
  if (options.type() == ClassifierType::kLinear)
    return torch::nn::functional::linear(x, weight, bias);

  const double s = options.scale(), m = options.margin();
  const auto cos = cosine(x);
  if (!is_training() || !targets.defined()) return cos * s;
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == x.size(0),
              "targets must be [N] identity labels (got ", targets.sizes(), ")");
  const auto one_hot = torch::zeros_like(cos).scatter_(1, targets.view({-1, 1}).to(torch::kLong), 1.0);

  switch (options.type()) {
    case ClassifierType::kCosFace:
      return s * (cos - m * one_hot);
    case ClassifierType::kCircle: {
      const auto c = cos.detach();
      const auto alpha_p = (1.0 + m - c).clamp_min(0.0);
      const auto alpha_n = (c + m).clamp_min(0.0);
      const auto positive = s * alpha_p * (cos - (1.0 - m));
      const auto negative = s * alpha_n * (cos - m);
      return one_hot * positive + (1.0 - one_hot) * negative;
    }
    case ClassifierType::kArcFace:
    case ClassifierType::kSubcenterArcFace: {
      // cos(theta + m), continued monotonically past theta = pi - m (as in insightface).
      const double cos_m = std::cos(m), sin_m = std::sin(m);
      const double threshold = std::cos(M_PI - m), fallback = std::sin(M_PI - m) * m;
      const auto c = cos.clamp(-1.0 + 1e-7, 1.0 - 1e-7);
      const auto sine = (1.0 - c * c).sqrt();
      auto phi = c * cos_m - sine * sin_m;
      phi = torch::where(c > threshold, phi, c - fallback);
      return s * (one_hot * phi + (1.0 - one_hot) * c);
    }
    case ClassifierType::kLinear:
      break;
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled classifier type");
}

// ---- head ---------------------------------------------------------------------------------------

void ReidHead::build(torch::nn::Module& owner, int64_t in_channels, const HeadOptions& options,
                     const std::function<torch::Tensor(const torch::Tensor&)>& embedding,
                     int64_t embedding_dim, const std::string& suffix) {
  options_ = options;
  pool_ = owner.register_module("global_pool" + suffix, GlobalPooling(options.pooling(), options.gem_p()));
  embedding_ = embedding;
  feature_dim_ = embedding ? embedding_dim : in_channels;
  const bool bnneck = options.neck() == Neck::kBNNeck;
  if (bnneck) {
    // BoT's BNNeck: the BN shift is frozen at zero so that f_i stays centred for the
    // classifier while the triplet loss works on f_t.
    bottleneck_ = owner.register_module("bottleneck" + suffix, BatchNorm1d(feature_dim_));
    torch::NoGradGuard no_grad;
    bottleneck_->weight.fill_(1.0);
    bottleneck_->bias.zero_();
    bottleneck_->bias.set_requires_grad(false);
  }
  if (options.num_classes() > 0) {
    auto classifier_options = ClassifierOptions(feature_dim_, options.num_classes())
                                  .type(options.classifier())
                                  .bias(!bnneck)
                                  .scale(options.scale())
                                  .margin(options.margin())
                                  .subcenters(options.subcenters())
                                  .init_std(bnneck ? 0.001 : 0.01);
    classifier_ = owner.register_module("classifier" + suffix, Classifier(classifier_options));
  }
}

ReidOutput ReidHead::forward(const torch::Tensor& feature_map, const torch::Tensor& targets,
                             bool training) {
  ReidOutput out;
  auto v = pool_->forward(feature_map);
  if (embedding_) v = embedding_(v);
  const auto after_neck = bottleneck_ ? bottleneck_->forward(v) : v;
  out.feature = (bottleneck_ && options_.neck_feat() == NeckFeat::kBefore) ? v : after_neck;
  out.embeddings = {{"global", v}};
  if (training && classifier_) out.class_logits = {{"global", classifier_->forward(after_neck, targets)}};
  return out;
}

}  // namespace reid::models
