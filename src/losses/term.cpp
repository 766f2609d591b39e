#include "reid/losses/term.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <system_error>

#include <fmt/format.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/losses/center.h"
#include "reid/losses/cross_entropy.h"
#include "reid/utils/strings.h"

namespace reid::losses {

TermParams::TermParams(std::string term, std::map<std::string, std::string> values)
    : term_(std::move(term)), values_(std::move(values)) {}

const std::string* TermParams::find(const std::string& key) const {
  asked_->insert(key);
  const auto found = values_.find(key);
  return found != values_.end() ? &found->second : nullptr;
}

bool TermParams::has(const std::string& key) const { return find(key) != nullptr; }

namespace {

[[noreturn]] void bad_value(const std::string& term, const std::string& key, const std::string& expected,
                            const std::string& text) {
  throw ConfigError("loss." + term + "." + key, "expected " + expected + " (got '" + text + "')");
}

}  // namespace

double TermParams::number(const std::string& key, double fallback) const {
  const std::string* text = find(key);
  if (!text) return fallback;
  // from_chars: the C locale's decimal point whatever the program's locale is.
  const std::string t = utils::trim(*text);
  const char* first = t.c_str() + (!t.empty() && t[0] == '+' ? 1 : 0);
  const char* last = t.c_str() + t.size();
  double value = 0;
  const auto [end, error] = std::from_chars(first, last, value);
  if (first == last || error != std::errc() || end != last || !std::isfinite(value))
    bad_value(term_, key, "a finite number", *text);
  return value;
}

int64_t TermParams::integer(const std::string& key, int64_t fallback) const {
  const std::string* text = find(key);
  if (!text) return fallback;
  const std::string t = utils::trim(*text);
  const char* first = t.c_str() + (!t.empty() && t[0] == '+' ? 1 : 0);
  const char* last = t.c_str() + t.size();
  int64_t value = 0;
  const auto [end, error] = std::from_chars(first, last, value);
  if (first == last || error != std::errc() || end != last) bad_value(term_, key, "an integer", *text);
  return value;
}

bool TermParams::boolean(const std::string& key, bool fallback) const {
  const std::string* text = find(key);
  if (!text) return fallback;
  std::string t = utils::trim(*text);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (t == "true" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "no" || t == "off") return false;
  bad_value(term_, key, "a boolean (true or false)", *text);
}

std::string TermParams::text(const std::string& key, const std::string& fallback) const {
  const std::string* text = find(key);
  return text ? *text : fallback;
}

std::vector<std::string> TermParams::asked() const { return {asked_->begin(), asked_->end()}; }

std::vector<std::string> TermParams::unread() const {
  std::vector<std::string> out;
  for (const auto& entry : values_)
    if (!asked_->count(entry.first)) out.push_back(entry.first);
  return out;
}

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
  CrossEntropyTerm(double epsilon, std::string accuracy_key)
      : epsilon_(epsilon), accuracy_key_(std::move(accuracy_key)) {}
  TermValue evaluate(const models::ReidOutput& output, const torch::Tensor& targets) override {
    const auto logits = select_inputs(output, TermInput::kLogits, {}, "ce");
    const auto value = mean_over(
        logits, [&](const torch::Tensor& l) { return cross_entropy_label_smooth(l, targets, epsilon_); },
        select_weights(output, TermInput::kLogits));
    return {value, {{accuracy_key_, accuracy(logits.front().detach(), targets)}}};
  }

 private:
  double epsilon_;
  std::string accuracy_key_;
};

/// "triplet": batch-hard triplet, averaged over every embedding; active fraction of the first.
class TripletTerm : public LossTermImpl {
 public:
  TripletTerm(const TripletOptions& options, const std::string& name)
      : options_(options), active_key_(name + "_active") {}
  TermValue evaluate(const models::ReidOutput& output, const torch::Tensor& targets) override {
    const auto features = select_inputs(output, TermInput::kEmbeddings, {}, "triplet");
    torch::Tensor active;
    const auto value = mean_over(features, [&](const torch::Tensor& f) {
      auto r = batch_hard_triplet(f, targets, options_);
      if (!active.defined()) active = r.active_fraction;
      return r.loss;
    }, select_weights(output, TermInput::kEmbeddings));
    return {value, {{active_key_, active}}};
  }
  std::string epoch_warning(const std::string& name,
                            const std::vector<std::pair<std::string, double>>& epoch_means) const override {
    if (!triplet_collapsed(epoch_means, options_.margin(), name)) return {};
    return "the triplet loss '" + name + "' sat at its margin (" + fmt::format("{:.4f}", options_.margin()) +
           ") with every triplet active for the whole epoch: the embedding has collapsed to a single point. "
           "Likely causes: no learning-rate warmup (solver.warmup_epochs), a rate too high, or a triplet on "
           "unnormalised post-ReLU features (try loss." + name + ".normalize=true or a BNNeck)";
  }

 private:
  TripletOptions options_;
  std::string active_key_;
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

// A metric key of a term's own block, checked like the config's.
eval::Metric own_metric(const TermParams& own, eval::Metric fallback) {
  const std::string name = own.text("metric", eval::metric_name(fallback));
  if (name != "euclidean" && name != "cosine")
    throw ConfigError("loss." + own.term() + ".metric", "must be one of euclidean, cosine (got '" + name + "')");
  return eval::parse_metric(name);
}

}  // namespace

void register_builtin_losses(LossRegistry& registry) {
  // Each reads its block over the typed options, which are loss.<name>'s for the built-in names.
  registry.add("ce", [](const LossSetOptions& o) {
    const auto own = o.own();
    const double epsilon = own.number("epsilon", o.ce_epsilon());
    if (epsilon < 0.0 || epsilon > 0.999)
      throw ConfigError("loss." + o.term() + ".epsilon", "must be in [0, 0.999] (got " + fmt::format("{}", epsilon) + ")");
    // The default term keeps its statistic's historical name, "accuracy".
    const std::string accuracy_key = o.term().empty() || o.term() == "ce" ? "accuracy" : o.term() + "_accuracy";
    return weighted(std::make_shared<CrossEntropyTerm>(epsilon, accuracy_key), o.ce_weight());
  });
  registry.add("triplet", [](const LossSetOptions& o) {
    const auto own = o.own();
    auto options = o.triplet();
    options.margin(own.number("margin", options.margin()));
    if (options.margin() < 0.0)
      throw ConfigError("loss." + o.term() + ".margin", "must be at least 0 (got " + fmt::format("{}", options.margin()) + ")");
    options.metric(own_metric(own, options.metric())).normalize(own.boolean("normalize", options.normalize()));
    return weighted(std::make_shared<TripletTerm>(options, o.term().empty() ? "triplet" : o.term()), o.triplet_weight());
  });
  registry.add("wrt", [](const LossSetOptions& o) {
    const auto own = o.own();
    auto options = o.wrt();
    options.metric(own_metric(own, options.metric())).normalize(own.boolean("normalize", options.normalize()));
    return weighted(std::make_shared<WrtTerm>(options), o.wrt_weight());
  });
  registry.add("center", [](const LossSetOptions& o) {
    const auto widths = o.embedding_widths();
    TORCH_CHECK(o.num_classes() > 0 && !widths.empty(), "the center loss needs num_classes and feature_dim");
    std::vector<models::NamedWidth> inputs;
    const auto& wanted = o.center_inputs();
    for (const auto& e : widths)
      if (wanted.empty() || std::count(wanted.begin(), wanted.end(), e.first) > 0) inputs.push_back(e);
    TORCH_CHECK(inputs.size() == (wanted.empty() ? widths.size() : wanted.size()),
                "the center loss's inputs (", utils::join(wanted), ") name features the model does not output");
    const double lr = o.own().number("lr", o.center_lr());
    if (!(lr > 0.0))
      throw ConfigError("loss." + o.term() + ".lr", "must be positive (got " + fmt::format("{}", lr) + ")");
    return weighted(std::make_shared<CenterLossImpl>(o.num_classes(), inputs, lr), o.center_weight());
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
