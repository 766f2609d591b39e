#pragma once
/// @file
/// A loss term: one named part of the training objective. Terms are modules (they may own
/// parameters, such as the center loss's centres, and an optimiser of their own) built by name
/// from the loss registry, so a new loss is added without touching the library
/// (docs/adding_a_loss.md).

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/optim/optimizer.h>

#include "reid/core/registry.h"
#include "reid/losses/triplet.h"
#include "reid/models/output.h"

namespace reid::losses {

/// What a term contributes on one batch.
struct TermValue {
  /// The term's unweighted value (0-d, attached to the graph).
  torch::Tensor value;
  /// Diagnostics, by name (0-d tensors, detached; never read back by the term).
  std::vector<std::pair<std::string, torch::Tensor>> stats;
};

/// Which model outputs a term consumes.
enum class TermInput {
  /// `ReidOutput::embeddings` (metric losses).
  kEmbeddings,
  /// `ReidOutput::class_logits` (identity losses).
  kLogits,
};

/// Base class of every loss term.
class LossTermImpl : public torch::nn::Module {
 public:
  /// The term's value on `output` for identity labels `targets` (int64 [N]).
  virtual TermValue evaluate(const models::ReidOutput& output, const torch::Tensor& targets) = 0;
  /// An optimiser of the term's own parameters, or null (the default) when the model's optimiser
  /// should not be used for them or there are none. The loss set builds it once, steps it after
  /// the model's (LossSetImpl::step_auxiliary()) and names it "<term name>_optimizer" in the
  /// checkpoint.
  virtual std::unique_ptr<torch::optim::Optimizer> make_optimizer() { return nullptr; }
  /// Factor applied to the term's parameter gradients before its own optimiser steps.
  virtual double optimizer_grad_scale() const { return 1.0; }
  /// A warning about a finished epoch, or "" (the default) when nothing is wrong. `name` is the
  /// term's name in the loss set; `epoch_means` holds the epoch's mean of every term (by its
  /// name) and every statistic. The training log shows a term's warning once per run.
  virtual std::string epoch_warning(const std::string& name,
                                    const std::vector<std::pair<std::string, double>>& epoch_means) const {
    (void)name;
    (void)epoch_means;
    return {};
  }
  /// Weight of the term in the total loss.
  double weight() const { return weight_; }
  void set_weight(double weight) { weight_ = weight; }

 protected:
  LossTermImpl() = default;

 private:
  double weight_ = 1.0;
};

/// Shared handle to a loss term.
using LossTerm = std::shared_ptr<LossTermImpl>;

/// The entries of `output` a term consumes: every entry of the `input` list, or those named in
/// `names` (in that order). Throws c10::Error naming the term when the list is empty (no
/// classifier: build the model with identities, in train mode) or a name is missing.
std::vector<torch::Tensor> select_inputs(const models::ReidOutput& output, TermInput input,
                                         const std::vector<std::string>& names, const std::string& term);

/// The weights (`ReidOutput::weight()`) of the entries select_inputs() returns, in its order.
std::vector<double> select_weights(const models::ReidOutput& output, TermInput input,
                                   const std::vector<std::string>& names = {});

/// The mean of `term(x)` over `inputs` (the value itself for one input, so single-branch models
/// get exactly the single-feature number), weighted by `weights` (one per input; empty: equal)
/// as sum(w_i * term(x_i)) / sum(w_i).
torch::Tensor mean_over(const std::vector<torch::Tensor>& inputs,
                        const std::function<torch::Tensor(const torch::Tensor&)>& term,
                        const std::vector<double>& weights = {});

/// A loss term's own options: the keys of its YAML block (`loss.<term>: {key: value, ...}`) as
/// written, read with typed getters that take the default. Every read marks the key as one the
/// term knows; after building a term the loss set rejects the block's keys it never read (with
/// a did-you-mean over the ones it did), so a misspelt key is an error, not a silent default.
/// Copies share the record of what was read.
class TermParams {
 public:
  TermParams() = default;
  /// `term` names the term in errors ("loss.<term>.<key>"); `values`: key -> scalar text.
  TermParams(std::string term, std::map<std::string, std::string> values);

  /// True when the block sets `key` (marks it read).
  bool has(const std::string& key) const;
  /// The value of `key` as a finite number, or `fallback` when the block does not set it.
  /// Throws reid::ConfigError naming loss.<term>.<key> when the text is not one.
  double number(const std::string& key, double fallback) const;
  /// ... as an integer.
  int64_t integer(const std::string& key, int64_t fallback) const;
  /// ... as a boolean (true/false, yes/no, on/off; any case).
  bool boolean(const std::string& key, bool fallback) const;
  /// ... as text.
  std::string text(const std::string& key, const std::string& fallback) const;

  /// The block as written, key -> text.
  const std::map<std::string, std::string>& values() const { return values_; }
  /// The keys a getter has asked for so far (set or not), sorted.
  std::vector<std::string> asked() const;
  /// The block's keys no getter has asked for, sorted.
  std::vector<std::string> unread() const;
  /// The term's name.
  const std::string& term() const { return term_; }

 private:
  const std::string* find(const std::string& key) const;
  std::string term_;
  std::map<std::string, std::string> values_;
  std::shared_ptr<std::set<std::string>> asked_ = std::make_shared<std::set<std::string>>();
};

/// Terms' own blocks by term name.
using TermParamsByName = std::map<std::string, TermParams>;

/// Options of the loss set, and what every term is built from: the terms' names and parameters
/// and what the model outputs. A term of your own takes what it needs from here or from its
/// builder's captures (docs/adding_a_loss.md).
struct LossSetOptions {
  /// Terms, looked up in the loss registry: "ce" (label-smoothed cross-entropy on every
  /// classifier's logits), "triplet" (batch-hard, on every embedding), "center" (on the
  /// embeddings) and "wrt" (AGW's weighted regularised triplet, on every embedding).
  TORCH_ARG(std::vector<std::string>, names) = std::vector<std::string>({"ce"});
  TORCH_ARG(double, ce_weight) = 1.0;
  TORCH_ARG(double, ce_epsilon) = 0.1;
  TORCH_ARG(double, triplet_weight) = 1.0;
  TORCH_ARG(TripletOptions, triplet);
  TORCH_ARG(double, center_weight) = 0.0005;
  /// The centres' own SGD learning rate (their gradient is rescaled by 1 / center_weight).
  TORCH_ARG(double, center_lr) = 0.5;
  /// Embeddings the center loss acts on (empty: every one, each with its own centres).
  TORCH_ARG(std::vector<std::string>, center_inputs);
  TORCH_ARG(double, wrt_weight) = 1.0;
  TORCH_ARG(WrtOptions, wrt);
  /// Identities (for terms with per-identity parameters: the center loss).
  TORCH_ARG(int64_t, num_classes) = 0;
  /// Width of the "global" embedding, for a single-branch model (used when `embeddings` is empty).
  TORCH_ARG(int64_t, feature_dim) = 0;
  /// The model's embeddings, name and width (`ReidModelImpl::embedding_dims()`).
  TORCH_ARG(std::vector<models::NamedWidth>, embeddings);
  /// Each term's own YAML block (`loss.<term>`), by term name: the options of terms the program
  /// registers, read by their builders through own(). (The built-in terms' blocks loss.ce,
  /// loss.triplet, loss.center and loss.wrt are typed config sections, converted into the fields
  /// above; a built-in term registered under another name reads its block here.)
  TORCH_ARG(TermParamsByName, params);
  /// The name of the term being built: the loss set sets it for each builder it calls.
  TORCH_ARG(std::string, term);


 public:
  /// `embeddings`, or {"global", feature_dim} when empty and feature_dim > 0.
  std::vector<models::NamedWidth> embedding_widths() const {
    if (!embeddings_.empty() || feature_dim_ <= 0) return embeddings_;
    return {{"global", feature_dim_}};
  }
  /// The block of the term being built (`params()[term()]`; empty when it has none).
  TermParams own() const {
    const auto found = params_.find(term_);
    return found != params_.end() ? found->second : TermParams(term_, {});
  }
};

/// Registry of loss terms by name.
using LossRegistry = Registry<LossTerm(const LossSetOptions&)>;

/// Adds the built-in terms: ce, triplet, center, wrt. Each also reads its own block
/// (LossSetOptions::own()) over the typed options, so a program can register one under a second
/// name (`registry.add("tri_bn", builtin_losses().builder("triplet"))`) and give that one its own
/// options in `loss.tri_bn`: ce reads `epsilon`; triplet `margin`, `metric`, `normalize`; wrt
/// `metric`, `normalize`; center `lr`. (`weight` is read by the loss set for every term.)
void register_builtin_losses(LossRegistry& registry);

/// A registry holding the built-in terms (built once; copy it to add your own).
const LossRegistry& builtin_losses();

}  // namespace reid::losses
