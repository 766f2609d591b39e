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
/// A model may have several branches (MGN: a global branch and part stripes), so the training
/// outputs are named lists: `embeddings` are the features metric losses (triplet, center, WRT)
/// act on, `class_logits` the classifier outputs identity losses act on. A loss term takes every
/// entry of the list it consumes (or the entries it names) and averages over them. Single-branch
/// models fill one entry each, named "global", which are the fields below: their numbers are
/// those of a model with one feature and one classifier.
struct ReidOutput {
  /// Pooled (and, for OSNet, embedded) feature f_t of the main branch: what the triplet and
  /// center losses use.
  torch::Tensor global_feat;
  /// Feature after the neck f_i (equal to global_feat when there is no neck).
  torch::Tensor bn_feat;
  /// Classifier logits [N, num_classes] of the main branch; undefined in eval mode or without a
  /// classifier.
  torch::Tensor logits;
  /// The test feature (global_feat or bn_feat, as the head's neck_feat says; a multi-branch
  /// model's concatenated branch features).
  torch::Tensor feature;
  /// Training only: every feature metric losses act on, [N, D_i] each, by name.
  std::vector<NamedTensor> embeddings;
  /// Training only: every classifier's logits, [N, num_classes] each, by name.
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

  /// `embeddings`, or {"global", global_feat} when the list is empty and global_feat is set.
  std::vector<NamedTensor> embedding_list() const {
    if (!embeddings.empty() || !global_feat.defined()) return embeddings;
    return {{"global", global_feat}};
  }
  /// `class_logits`, or {"global", logits} when the list is empty and logits are set.
  std::vector<NamedTensor> logits_list() const {
    if (!class_logits.empty() || !logits.defined()) return class_logits;
    return {{"global", logits}};
  }
};

}  // namespace reid::models
