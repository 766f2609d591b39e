#pragma once
/// @file
/// ReID heads: global pooling (average, max, GeM), the BNNeck and classifiers (linear and the
/// margin-based ArcFace, CosFace, CircleSoftmax and sub-center ArcFace).

#include <functional>
#include <string>

#include <torch/nn/module.h>
#include "reid/models/norm.h"
#include <torch/nn/pimpl.h>

#include "reid/core/registry.h"
#include "reid/models/output.h"

namespace reid::models {

/// Global pooling of a feature map to one vector per image.
enum class Pooling { kAvg, kMax, kGeM };
/// What sits between the pooled feature and the classifier.
enum class Neck { kNone, kBNNeck };
/// Which feature a model with a neck returns at test time.
enum class NeckFeat { kBefore, kAfter };
/// Classifier kind.
enum class ClassifierType { kLinear, kArcFace, kCosFace, kCircle, kSubcenterArcFace };

/// The head's kinds by name (what config validation lists as valid).
const Registry<Pooling()>& pooling_registry();
const Registry<Neck()>& neck_registry();
const Registry<NeckFeat()>& neck_feat_registry();
const Registry<ClassifierType()>& classifier_registry();

/// Parses "avg" / "max" / "gem"; throws reid::Error listing the valid names.
Pooling parse_pooling(const std::string& name);
/// Parses "none" / "bnneck".
Neck parse_neck(const std::string& name);
/// Parses "before" / "after".
NeckFeat parse_neck_feat(const std::string& name);
/// Parses "linear" / "arcface" / "cosface" / "circle" / "subcenter_arcface".
ClassifierType parse_classifier(const std::string& name);

/// Generalized-mean pooling (Radenović et al., TPAMI 2018): (mean x^p)^(1/p) over the spatial
/// dimensions, with a learnable exponent p (p = 1 is average, p -> inf is max pooling).
class GeMPoolingImpl : public torch::nn::Module {
 public:
  explicit GeMPoolingImpl(double p = 3.0, double eps = 1e-6);
  /// [N, C, H, W] -> [N, C].
  torch::Tensor forward(const torch::Tensor& x);
  /// The learnable exponent (shape [1]).
  torch::Tensor p;

 private:
  double eps_;
};
TORCH_MODULE(GeMPooling);

/// Average, max or GeM pooling, [N, C, H, W] -> [N, C].
class GlobalPoolingImpl : public torch::nn::Module {
 public:
  explicit GlobalPoolingImpl(Pooling kind = Pooling::kAvg, double gem_p = 3.0);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  Pooling kind_;
  GeMPooling gem_{nullptr};
};
TORCH_MODULE(GlobalPooling);

/// Options of a Classifier.
struct ClassifierOptions {
  ClassifierOptions(int64_t in_features, int64_t num_classes)
      : in_features_(in_features), num_classes_(num_classes) {}
  /// Input feature dimension.
  TORCH_ARG(int64_t, in_features);
  /// Number of identities.
  TORCH_ARG(int64_t, num_classes);
  /// Kind of classifier.
  TORCH_ARG(ClassifierType, type) = ClassifierType::kLinear;
  /// Linear classifier: learn a bias (torchreid's OSNet does; a BNNeck classifier does not).
  TORCH_ARG(bool, bias) = true;
  /// Margin classifiers: logit scale s.
  TORCH_ARG(double, scale) = 30.0;
  /// Margin classifiers: margin m.
  TORCH_ARG(double, margin) = 0.5;
  /// Sub-center ArcFace: centres per class.
  TORCH_ARG(int64_t, subcenters) = 3;
  /// Standard deviation of the normal initialisation of the weight.
  TORCH_ARG(double, init_std) = 0.01;
};

/// Identity classifier. `weight` is [num_classes (x subcenters), in_features] and `bias` (linear
/// only) [num_classes], named like torch.nn.Linear so that state dicts load by name.
///
/// Margin forms act on cosine similarities between the L2-normalised feature and class weight:
/// - ArcFace (Deng et al., CVPR 2019): s * cos(theta + m) for the target class;
/// - CosFace (Wang et al., CVPR 2018): s * (cos(theta) - m) for the target class;
/// - CircleSoftmax (Sun et al., CVPR 2020, as in fast-reid): self-paced weights
///   alpha_p = [1 + m - cos]+, alpha_n = [cos + m]+ with optima 1 - m and m;
/// - sub-center ArcFace (Deng et al., ECCV 2020): the closest of K centres per class, then ArcFace.
/// Without targets (or in eval mode) margin classifiers return s * cos(theta).
class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(const ClassifierOptions& options);
  /// `targets` (int64 [N]) is needed by margin classifiers in training, ignored otherwise.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& targets = {});
  void reset_parameters();
  ClassifierOptions options;
  torch::Tensor weight;
  torch::Tensor bias;

 private:
  torch::Tensor cosine(const torch::Tensor& x) const;
};
TORCH_MODULE(Classifier);

/// Options of the head shared by every network.
struct HeadOptions {
  /// Identities to classify; 0 builds no classifier (a pure feature extractor).
  TORCH_ARG(int64_t, num_classes) = 0;
  /// Global pooling.
  TORCH_ARG(Pooling, pooling) = Pooling::kAvg;
  /// GeM initial exponent.
  TORCH_ARG(double, gem_p) = 3.0;
  /// Neck.
  TORCH_ARG(Neck, neck) = Neck::kNone;
  /// Test feature with a neck.
  TORCH_ARG(NeckFeat, neck_feat) = NeckFeat::kAfter;
  /// Classifier kind.
  TORCH_ARG(ClassifierType, classifier) = ClassifierOptions(0, 0).type();
  /// Margin classifiers: scale.
  TORCH_ARG(double, scale) = ClassifierOptions(0, 0).scale();
  /// Margin classifiers: margin.
  TORCH_ARG(double, margin) = ClassifierOptions(0, 0).margin();
  /// Sub-center ArcFace: centres per class.
  TORCH_ARG(int64_t, subcenters) = ClassifierOptions(0, 0).subcenters();
};

/// Pooling -> optional embedding -> neck -> classifier. Not a module itself: build() registers
/// `global_pool`, `bottleneck` (BNNeck, as in BoT) and `classifier` directly on the owning
/// network, so parameter names stay flat (`classifier.weight`) and match the Python models.
class ReidHead {
 public:
  /// Registers the head's modules on `owner`. `in_channels` is the backbone's output width;
  /// `embedding` (may be empty) maps the pooled vector to the feature (OSNet's `fc`), and
  /// `embedding_dim` is its output width. `suffix` is appended to the module names (a second
  /// head on the same owner: TransReID's `bottleneck_1`, `classifier_1`).
  void build(torch::nn::Module& owner, int64_t in_channels, const HeadOptions& options,
             const std::function<torch::Tensor(const torch::Tensor&)>& embedding = {},
             int64_t embedding_dim = 0, const std::string& suffix = "");
  /// Head of a [N, C, h, w] feature map. In training every field of ReidOutput is filled; in
  /// eval mode only the features.
  ReidOutput forward(const torch::Tensor& feature_map, const torch::Tensor& targets, bool training);
  /// Width of the test feature.
  int64_t feature_dim() const { return feature_dim_; }
  const HeadOptions& options() const { return options_; }

 private:
  HeadOptions options_;
  int64_t feature_dim_ = 0;
  GlobalPooling pool_{nullptr};
  std::function<torch::Tensor(const torch::Tensor&)> embedding_;
  BatchNorm1d bottleneck_{nullptr};
  Classifier classifier_{nullptr};
};

}  // namespace reid::models
