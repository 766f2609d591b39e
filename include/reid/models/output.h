#pragma once
/// @file
/// What every ReID model returns.

#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace reid::models {

/// A tensor with the name of the branch (or part) that produced it.
using NamedTensor = std::pair<std::string, torch::Tensor>;
/// The name and width of an output.
using NamedWidth = std::pair<std::string, int64_t>;

/// The output of a ReID model's forward pass. Losses consume it; the model never knows which
/// loss is used.
///
/// A model may have several branches (MGN: a global branch and part stripes), so its outputs are
/// named lists: `embeddings` are the features metric losses (triplet, center, WRT) act on,
/// `class_logits` the classifier outputs identity losses act on. A loss term takes every entry of
/// the list it consumes (or the entries it names) and averages over them. A single-branch model
/// fills one entry each, named "global": its numbers are those of a model with one feature and
/// one classifier.
struct ReidOutput {
  /// The test feature: the main branch's feature before or after the neck (as the head's
  /// neck_feat says); a multi-branch model's concatenated branch features.
  torch::Tensor feature;
  /// Every feature metric losses act on, [N, D_i] each, by name: the pooled (and, for OSNet,
  /// embedded) features before any neck. The main branch's is "global". Filled in train and eval
  /// mode (a video model pools its backbone's "global" frame features).
  std::vector<NamedTensor> embeddings;
  /// Training only: every classifier's logits, [N, num_classes] each, by name (empty in eval
  /// mode or without a classifier).
  std::vector<NamedTensor> class_logits;
  /// Training only: relative weights of named entries in a loss term's mean over the entries of
  /// `embeddings` / `class_logits` (1 for a name not listed). A term's value is the weighted
  /// mean sum(w_i * loss_i) / sum(w_i). TransReID's JPM weights its global feature by the number
  /// of local ones, so that global and locals each make half of every loss.
  std::vector<std::pair<std::string, double>> weights;

  /// The weight of entry `name` (1 when not listed).
  double weight(const std::string& name) const {
    for (const auto& [n, w] : weights)
      if (n == name) return w;
    return 1.0;
  }
  /// The embedding named `name` (undefined when there is none).
  torch::Tensor embedding(const std::string& name = "global") const { return find(embeddings, name); }
  /// The logits of the classifier named `name` (undefined when there is none: eval mode, or a
  /// model built without identities).
  torch::Tensor logits(const std::string& name = "global") const { return find(class_logits, name); }

 private:
  static torch::Tensor find(const std::vector<NamedTensor>& list, const std::string& name) {
    for (const auto& [n, t] : list)
      if (n == name) return t;
    return {};
  }
};

}  // namespace reid::models
