#include "reid/losses/term.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <torch/torch.h>

#include "reid/losses/center.h"
#include "reid/losses/cross_entropy.h"

namespace reid::losses {

std::vector<torch::Tensor> select_inputs(const models::ReidOutput& output, TermInput input,
                                         const std::vector<std::string>& names, const std::string& term) {
  const bool logits = input == TermInput::kLogits;
  const auto& list = logits ? output.class_logits : output.embeddings;
  TORCH_CHECK(!list.empty(), "the ", term, " loss needs ",
              logits ? "logits: build the model with num_classes > 0 and train mode" : "embedding features");
  std::vector<torch::Tensor> out;
  if (names.empty()) {
    for (const auto& entry : list) out.push_back(entry.second);
    return out;
  }
  for (const auto& name : names) {
    auto it = std::find_if(list.begin(), list.end(), [&](const models::NamedTensor& e) { return e.first == name; });
    if (it == list.end()) {
      std::vector<std::string> have;
      for (const auto& entry : list) have.push_back(entry.first);
      TORCH_CHECK(false, "the ", term, " loss consumes the ", logits ? "logits" : "embedding", " '", name,
                  "', which the model does not output (it has: ", utils::join(have), ")");
    }
    out.push_back(it->second);
  }
  return out;
}

std::vector<double> select_weights(const models::ReidOutput& output, TermInput input,
                                   const std::vector<std::string>& names) {
  std::vector<double> weights;
  if (!names.empty()) {
    for (const auto& name : names) weights.push_back(output.weight(name));
    return weights;
  }
  const auto& list = input == TermInput::kLogits ? output.class_logits : output.embeddings;
  for (const auto& entry : list) weights.push_back(output.weight(entry.first));
  return weights;
}

torch::Tensor mean_over(const std::vector<torch::Tensor>& inputs,
                        const std::function<torch::Tensor(const torch::Tensor&)>& term,
                        const std::vector<double>& weights) {
  TORCH_CHECK(!inputs.empty(), "a loss term got no inputs");
  TORCH_CHECK(weights.empty() || weights.size() == inputs.size(), "a loss term got ", inputs.size(), " inputs but ",
              weights.size(), " weights");
  const bool equal = weights.empty() || std::all_of(weights.begin(), weights.end(), [&](double w) { return w == weights.front(); });
  if (inputs.size() == 1) return term(inputs.front());
  if (equal) {
    // Plain mean: the numbers of models without weights are exactly what they were.
    auto total = term(inputs.front());
    for (std::size_t i = 1; i < inputs.size(); ++i) total = total + term(inputs[i]);
    return total / static_cast<double>(inputs.size());
  }
  double sum = 0.0;
  for (double w : weights) {
    TORCH_CHECK(w >= 0.0 && std::isfinite(w), "loss entry weights must be finite and >= 0 (got ", w, ")");
    sum += w;
  }
  TORCH_CHECK(sum > 0.0, "loss entry weights sum to 0");
  auto total = weights[0] * term(inputs[0]);
  for (std::size_t i = 1; i < inputs.size(); ++i) total = total + weights[i] * term(inputs[i]);
  return total / sum;
}

namespace {

/// "ce": label-smoothed cross-entropy, averaged over every classifier; accuracy of the first.
class CrossEntropyTerm : public LossTermImpl {
 public:
  explicit CrossEntropyTerm(double epsilon) : epsilon_(epsilon) {}
  TermValue evaluate(const models::ReidOutput& output, const torch::Tensor& targets) override {
    const auto logits = select_inputs(output, TermInput::kLogits, {}, "ce");
    const auto value = mean_over(
        logits, [&](const torch::Tensor& l) { return cross_entropy_label_smooth(l, targets, epsilon_); },
        select_weights(output, TermInput::kLogits));
    return {value, {{"accuracy", accuracy(logits.front().detach(), targets)}}};
  }

 private:
  double epsilon_;
};

/// "triplet": batch-hard triplet, averaged over every embedding; active fraction of the first.
class TripletTerm : public LossTermImpl {
 public:
  explicit TripletTerm(const TripletOptions& options) : options_(options) {}
  TermValue evaluate(const models::ReidOutput& output, const torch::Tensor& targets) override {
    const auto features = select_inputs(output, TermInput::kEmbeddings, {}, "triplet");
    torch::Tensor active;
    const auto value = mean_over(features, [&](const torch::Tensor& f) {
      auto r = batch_hard_triplet(f, targets, options_);
      if (!active.defined()) active = r.active_fraction;
      return r.loss;
    }, select_weights(output, TermInput::kEmbeddings));
    return {value, {{"triplet_active", active}}};
  }
  std::string epoch_warning(const std::string& name,
                            const std::vector<std::pair<std::string, double>>& epoch_means) const override {
    if (!triplet_collapsed(epoch_means, options_.margin(), name)) return {};
    return "the triplet loss '" + name + "' sat at its margin (" + fmt::format("{:.4f}", options_.margin()) +
           ") with every triplet active for the whole epoch: the embedding has collapsed to a single point. "
           "Likely causes: no learning-rate warmup (solver.warmup_epochs), a rate too high, or a triplet on "
           "unnormalised post-ReLU features (try loss.triplet.normalize=true or a BNNeck)";
  }

 private:
  TripletOptions options_;
};

/// "wrt": AGW's weighted regularised triplet, averaged over every embedding.
class WrtTerm : public LossTermImpl {
 public:
  explicit WrtTerm(const WrtOptions& options) : options_(options) {}
  TermValue evaluate(const models::ReidOutput& output, const torch::Tensor& targets) override {
    const auto features = select_inputs(output, TermInput::kEmbeddings, {}, "wrt");
    return {mean_over(
                features, [&](const torch::Tensor& f) { return weighted_regularized_triplet(f, targets, options_).loss; },
                select_weights(output, TermInput::kEmbeddings)),
            {}};
  }

 private:
  WrtOptions options_;
};

template <class T>
LossTerm weighted(std::shared_ptr<T> term, double weight) {
  term->set_weight(weight);
  return term;
}

}  // namespace

void register_builtin_losses(LossRegistry& registry) {
  registry.add("ce", [](const LossSetOptions& o) {
    return weighted(std::make_shared<CrossEntropyTerm>(o.ce_epsilon()), o.ce_weight());
  });
  registry.add("triplet", [](const LossSetOptions& o) {
    return weighted(std::make_shared<TripletTerm>(o.triplet()), o.triplet_weight());
  });
  registry.add("wrt", [](const LossSetOptions& o) { return weighted(std::make_shared<WrtTerm>(o.wrt()), o.wrt_weight()); });
  registry.add("center", [](const LossSetOptions& o) {
    const auto widths = o.embedding_widths();
    TORCH_CHECK(o.num_classes() > 0 && !widths.empty(), "the center loss needs num_classes and feature_dim");
    std::vector<models::NamedWidth> inputs;
    const auto& wanted = o.center_inputs();
    for (const auto& e : widths)
      if (wanted.empty() || std::count(wanted.begin(), wanted.end(), e.first) > 0) inputs.push_back(e);
    TORCH_CHECK(inputs.size() == (wanted.empty() ? widths.size() : wanted.size()),
                "the center loss's inputs (", utils::join(wanted), ") name features the model does not output");
    return weighted(std::make_shared<CenterLossImpl>(o.num_classes(), inputs, o.center_lr()), o.center_weight());
  });
}

const LossRegistry& builtin_losses() {
  static const LossRegistry registry = [] {
    LossRegistry r("loss");
    register_builtin_losses(r);
    return r;
  }();
  return registry;
}

}  // namespace reid::losses
