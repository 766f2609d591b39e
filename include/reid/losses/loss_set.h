#pragma once
/// @file
/// The training objective as a weighted set of named terms, built by name from the loss
/// registry. It consumes the model's ReidOutput; the model never knows which losses are used.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/optim/optimizer.h>

#include "reid/losses/center.h"
#include "reid/losses/term.h"
#include "reid/losses/triplet.h"
#include "reid/models/output.h"

namespace reid::losses {

/// Value of the objective on one batch. Every value stays on the device (0-d tensors): reading
/// one back (`.item()`) would stall a GPU, so the trainer accumulates them and reads the means
/// once per log period.
struct LossResult {
  /// Weighted sum of the terms: what is back-propagated.
  torch::Tensor total;
  /// Each term's unweighted value, by name ("ce", "triplet", "center", ...), detached.
  std::vector<std::pair<std::string, torch::Tensor>> terms;
  /// Diagnostics: "accuracy" (with ce), "triplet_active" (fraction of active triplets), ...
  std::vector<std::pair<std::string, torch::Tensor>> stats;
};

/// Weighted sum of named loss terms. A term with parameters or buffers is a submodule registered
/// under its name (so its parameters are named "<term>.<parameter>", e.g. "center.centers");
/// stateless terms are not in the module tree (checkpoints written before terms were objects
/// hold no entry for them).
class LossSetImpl : public torch::nn::Module {
 public:
  /// Builds `options.names()` from `registry`; an unknown name throws reid::Error listing the
  /// registered ones.
  explicit LossSetImpl(const LossSetOptions& options, const LossRegistry& registry = builtin_losses());
  LossResult forward(const models::ReidOutput& output, const torch::Tensor& targets);
  /// The terms, by name, in the order of `options.names()`.
  const std::vector<std::pair<std::string, LossTerm>>& terms() const { return terms_; }
  /// The term named `name`, or null.
  LossTerm term(const std::string& name) const;
  /// The center loss, or empty when not used (a shortcut for term("center")).
  CenterLoss center() const;
  const LossSetOptions& options() const { return options_; }

  /// The terms' own optimisers (LossTermImpl::make_optimizer(), built with the set), by their
  /// checkpoint name "<term>_optimizer", in the terms' order.
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> auxiliary_optimizers() const;
  /// Clears the gradients of the terms' own optimisers (with the model's, before backward).
  void zero_auxiliary_grad();
  /// Steps the terms' own optimisers (after the model's), each term's gradients first multiplied
  /// by its optimizer_grad_scale().
  void step_auxiliary();

  /// Each term's warning about a finished epoch (LossTermImpl::epoch_warning()), as (term name,
  /// message), for the terms that have one. `epoch_means`: the epoch's mean of every term and
  /// statistic, by name.
  std::vector<std::pair<std::string, std::string>> epoch_warnings(
      const std::vector<std::pair<std::string, double>>& epoch_means) const;

 private:
  struct Auxiliary {
    std::string name;
    LossTerm term;
    std::unique_ptr<torch::optim::Optimizer> optimizer;
  };
  LossSetOptions options_;
  std::vector<std::pair<std::string, LossTerm>> terms_;
  std::vector<Auxiliary> auxiliary_;
};
TORCH_MODULE(LossSet);

}  // namespace reid::losses
