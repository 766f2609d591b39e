#include <gtest/gtest.h>

#include "reid/core/error.h"
#include "reid/losses/cross_entropy.h"
#include "reid/losses/loss_set.h"
#include "reid/losses/triplet.h"

namespace reid::losses {
namespace {

models::ReidOutput fake_output() {
  models::ReidOutput out;
  out.embeddings = {{"global", torch::tensor({{0.0}, {1.0}, {3.0}, {10.0}}, torch::kDouble)}};
  out.class_logits = {{"global", torch::tensor({{2.0, 0.0}, {0.0, 1.0}, {1.0, 1.0}, {0.0, 3.0}}, torch::kDouble)}};
  return out;
}

TEST(LossSet, WeightedSumOfNamedTerms) {
  const auto targets = torch::tensor({0, 0, 1, 1}, torch::kLong);
  LossSet set(LossSetOptions().names({"ce", "triplet"}).ce_weight(0.5).ce_epsilon(0.0).triplet_weight(2.0));
  const auto out = fake_output();
  const auto r = set->forward(out, targets);
  ASSERT_EQ(r.terms.size(), 2u);
  EXPECT_EQ(r.terms[0].first, "ce");
  EXPECT_EQ(r.terms[1].first, "triplet");
  const double ce = cross_entropy_label_smooth(out.logits(), targets, 0.0).item<double>();
  EXPECT_NEAR(r.terms[0].second.item<double>(), ce, 1e-12);
  EXPECT_NEAR(r.terms[1].second.item<double>(), 5.3 / 4, 1e-9);
  EXPECT_NEAR(r.total.item<double>(), 0.5 * ce + 2.0 * 5.3 / 4, 1e-9);
  ASSERT_EQ(r.stats.size(), 2u);
  EXPECT_EQ(r.stats[0].first, "accuracy");
  EXPECT_DOUBLE_EQ(r.stats[0].second.item<double>(), 0.5);  // rows 0 and 3 are right; row 2 ties -> class 0
  EXPECT_EQ(r.stats[1].first, "triplet_active");
  EXPECT_DOUBLE_EQ(r.stats[1].second.item<double>(), 0.25);
}

TEST(LossSet, CenterTermOwnsItsCentres) {
  LossSet set(LossSetOptions().names({"center"}).num_classes(2).feature_dim(1).center_weight(0.5));
  ASSERT_TRUE(set->center());
  {
    torch::NoGradGuard g;
    set->center()->centers.copy_(torch::tensor({{0.0f}, {2.0f}}));
  }
  auto out = fake_output();
  out.embeddings[0].second = out.embeddings[0].second.to(torch::kFloat);
  const auto r = set->forward(out, torch::tensor({0, 0, 1, 1}, torch::kLong));
  // (0 + 1 + 1 + 64) / 4 = 16.5, weighted 0.5.
  EXPECT_NEAR(r.terms[0].second.item<double>(), 16.5, 1e-5);
  EXPECT_NEAR(r.total.item<double>(), 8.25, 1e-5);
  EXPECT_EQ(set->parameters().size(), 1u);
}

TEST(LossSet, RejectsUnknownTermsAndMissingLogits) {
  EXPECT_THROW(LossSet(LossSetOptions().names({"arcface"})), Error);
  LossSet set(LossSetOptions().names({"ce"}));
  auto out = fake_output();
  out.class_logits.clear();
  EXPECT_THROW(set->forward(out, torch::tensor({0, 0, 1, 1}, torch::kLong)), c10::Error);
}

TEST(LossSet, StepsItsTermsOwnOptimisersWithTheirGradientScale) {
  EXPECT_TRUE(LossSet(LossSetOptions().names({"ce", "triplet"}))->auxiliary_optimizers().empty());
  // BoT's recipe: the centres' SGD at lr 0.5 with the gradient rescaled by 1 / weight.
  LossSet set(LossSetOptions().names({"ce", "center"}).num_classes(2).feature_dim(1).center_weight(0.25).center_lr(0.5));
  const auto optimizers = set->auxiliary_optimizers();
  ASSERT_EQ(optimizers.size(), 1u);
  EXPECT_EQ(optimizers[0].first, "center_optimizer");
  {
    torch::NoGradGuard g;
    set->center()->centers.copy_(torch::tensor({{0.0f}, {2.0f}}));
  }
  auto out = fake_output();
  out.embeddings[0].second = out.embeddings[0].second.to(torch::kFloat);
  out.class_logits[0].second = out.class_logits[0].second.to(torch::kFloat);
  const auto targets = torch::tensor({0, 0, 1, 1}, torch::kLong);
  for (int step = 0; step < 2; ++step) {  // the second step finds the first's gradient cleared
    set->zero_auxiliary_grad();
    const auto before = set->center()->centers.detach().clone();
    set->forward(out, targets).total.backward();
    // d/dc of 0.25 * sum_i |x_i - c_y|^2 / 4 is 0.25 * sum_i 2 (c_y - x_i) / 4.
    const auto grad = set->center()->centers.grad().clone();
    EXPECT_NEAR(grad[0].item<float>(), 0.25 * 2 * ((before[0].item<float>() - 0) + (before[0].item<float>() - 1)) / 4,
                1e-6);
    set->step_auxiliary();
    // Rescaled by 1 / 0.25, then one SGD step of 0.5.
    EXPECT_TRUE(torch::allclose(set->center()->centers.detach(), before - 0.5 * 4.0 * grad, 1e-6, 1e-6));
  }
}

TEST(LossSet, ATermWarnsAboutAnEpochUnderItsOwnName) {
  LossSet set(LossSetOptions().names({"ce", "triplet"}).triplet(TripletOptions().margin(0.3)));
  const auto warnings = set->epoch_warnings({{"ce", 5.9}, {"triplet", 0.3001}, {"accuracy", 0.0}, {"triplet_active", 1.0}});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].first, "triplet");
  EXPECT_NE(warnings[0].second.find("collapsed to a single point"), std::string::npos) << warnings[0].second;
  EXPECT_NE(warnings[0].second.find("0.3000"), std::string::npos) << warnings[0].second;
  EXPECT_TRUE(set->epoch_warnings({{"ce", 5.9}, {"triplet", 0.25}, {"triplet_active", 1.0}}).empty()) << "learning";
  EXPECT_TRUE(set->epoch_warnings({{"ce", 5.9}, {"triplet", 0.3}, {"triplet_active", 0.8}}).empty());
  // The soft margin has no margin to sit at; terms without a diagnosis say nothing.
  LossSet soft(LossSetOptions().names({"triplet"}).triplet(TripletOptions().margin(0.0)));
  EXPECT_TRUE(soft->epoch_warnings({{"triplet", 0.0}, {"triplet_active", 1.0}}).empty());
  LossSet ce(LossSetOptions().names({"ce"}));
  EXPECT_TRUE(ce->epoch_warnings({{"ce", 0.3}, {"triplet_active", 1.0}}).empty());
}

// A term of a program's own: y = scale * mean(embedding), with `scale` from its YAML block.
class ScaledMean : public LossTermImpl {
 public:
  explicit ScaledMean(double scale) : scale_(scale) {}
  TermValue evaluate(const models::ReidOutput& output, const torch::Tensor&) override {
    return {scale_ * output.embeddings.front().second.mean(), {}};
  }

 private:
  double scale_;
};

LossRegistry registry_with_own_terms() {
  LossRegistry registry = builtin_losses();
  registry.add("scaled", [](const LossSetOptions& o) {
    const auto own = o.own();
    // Options of every type a block holds.
    EXPECT_EQ(own.text("mode", "plain"), "plain");
    EXPECT_TRUE(own.boolean("enabled", false));
    EXPECT_EQ(own.integer("every", 1), 3);
    return std::make_shared<ScaledMean>(own.number("scale", 1.0));
  });
  registry.add("tri_bn", registry.builder("triplet"));
  return registry;
}

std::map<std::string, std::string> scaled_block(const std::string& scale) {
  return {{"scale", scale}, {"enabled", "Yes"}, {"every", "3"}, {"weight", "0.5"}};
}

TEST(LossSet, ATermReadsItsOwnBlock) {
  const auto targets = torch::tensor({0, 0, 1, 1}, torch::kLong);
  const auto registry = registry_with_own_terms();
  LossSet set(LossSetOptions().names({"scaled"}).params({{"scaled", TermParams("scaled", scaled_block("4"))}}), registry);
  const auto r = set->forward(fake_output(), targets);
  EXPECT_NEAR(r.terms[0].second.item<double>(), 4.0 * 3.5, 1e-12);
  EXPECT_NEAR(r.total.item<double>(), 0.5 * 4.0 * 3.5, 1e-12) << "weight is every block's key";
}

TEST(LossSet, ABlocksKeysAreCheckedByTheTermThatReadsThem) {
  const auto registry = registry_with_own_terms();
  auto build = [&](std::map<std::string, std::string> block) {
    LossSet(LossSetOptions().names({"ce", "scaled"}).params({{"scaled", TermParams("scaled", std::move(block))}}), registry);
  };
  auto block = scaled_block("4");
  block["scael"] = "2";
  try {
    build(block);
    ADD_FAILURE() << "a misspelt key was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "loss.scaled.scael: unknown option of the loss term 'scaled' (did you mean 'scale'?); it reads: "
              "enabled, every, mode, scale, weight");
  }
  try {
    build(scaled_block("large"));
    ADD_FAILURE() << "a bad number was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "loss.scaled.scale: expected a finite number (got 'large')");
  }
  for (const std::string bad : {"nan", "1e999", "", "4x"}) EXPECT_THROW(build(scaled_block(bad)), ConfigError) << bad;
  block = scaled_block("4");
  block["weight"] = "-1";
  EXPECT_THROW(build(block), ConfigError);
  block = scaled_block("4");
  block["every"] = "3.5";
  EXPECT_THROW(build(block), ConfigError);
  block = scaled_block("4");
  block["enabled"] = "maybe";
  EXPECT_THROW(build(block), ConfigError);
  // A block of a term that is not in the set.
  EXPECT_THROW(LossSet(LossSetOptions().names({"ce"}).params({{"scaled", TermParams("scaled", scaled_block("4"))}}), registry),
               ConfigError);
}

TEST(LossSet, ABuiltInTermUnderASecondNameHasItsOwnOptionsAndStatistics) {
  // Two batch-hard triplets, the second at its own margin and weight: each reports its own
  // active fraction and is diagnosed under its own name.
  const auto registry = registry_with_own_terms();
  const auto targets = torch::tensor({0, 0, 1, 1}, torch::kLong);
  LossSet set(LossSetOptions().names({"ce", "triplet", "tri_bn"}).triplet(TripletOptions().margin(0.3))
                  .params({{"tri_bn", TermParams("tri_bn", {{"margin", "20"}, {"weight", "0.25"}})}}),
              registry);
  const auto out = fake_output();
  const auto r = set->forward(out, targets);
  const auto own = batch_hard_triplet(out.embeddings[0].second, targets, TripletOptions().margin(20.0));
  EXPECT_NEAR(r.terms[2].second.item<double>(), own.loss.item<double>(), 1e-12);
  EXPECT_NEAR(r.total.item<double>(),
              r.terms[0].second.item<double>() + r.terms[1].second.item<double>() + 0.25 * own.loss.item<double>(), 1e-9);
  std::vector<std::string> stats;
  for (const auto& s : r.stats) stats.push_back(s.first);
  EXPECT_EQ(stats, (std::vector<std::string>{"accuracy", "triplet_active", "tri_bn_active"}));
  EXPECT_DOUBLE_EQ(r.stats[2].second.item<double>(), own.active_fraction.item<double>());
  const auto warnings = set->epoch_warnings({{"triplet", 1.0}, {"triplet_active", 1.0}, {"tri_bn", 20.0}, {"tri_bn_active", 1.0}});
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].first, "tri_bn");
  EXPECT_NE(warnings[0].second.find("loss.tri_bn.normalize"), std::string::npos) << warnings[0].second;
  // A misspelt option of the built-in term is caught the same way.
  EXPECT_THROW(LossSet(LossSetOptions().names({"ce", "tri_bn"}).params({{"tri_bn", TermParams("tri_bn", {{"margn", "1"}})}}),
                       registry),
               ConfigError);
}

TEST(LossSet, ATermThatTrainsItsOwnParametersNeedsAPositiveWeight) {
  // The centres' gradient is rescaled by 1 / weight.
  LossRegistry registry = builtin_losses();
  registry.add("center_bn", registry.builder("center"));
  auto options = LossSetOptions().names({"ce", "center_bn"}).num_classes(2).feature_dim(1);
  EXPECT_THROW(LossSet(options.params({{"center_bn", TermParams("center_bn", {{"weight", "0"}})}}), registry), ConfigError);
  LossSet set(options.params({{"center_bn", TermParams("center_bn", {{"weight", "+0.25"}, {"lr", "0.1"}})}}), registry);
  EXPECT_DOUBLE_EQ(set->term("center_bn")->weight(), 0.25);
  EXPECT_DOUBLE_EQ(set->term("center_bn")->optimizer_grad_scale(), 4.0);
  ASSERT_EQ(set->auxiliary_optimizers().size(), 1u);
  EXPECT_EQ(set->auxiliary_optimizers()[0].first, "center_bn_optimizer");
}

TEST(LossSet, TwoTermsCannotReportTheSameStatistic) {
  LossRegistry registry = builtin_losses();
  registry.add("ce_copy", [](const LossSetOptions& o) {
    auto copy = o;
    return builtin_losses().create("ce", copy.term(""));  // built without its name: reports "accuracy"
  });
  LossSet set(LossSetOptions().names({"ce", "ce_copy"}), registry);
  EXPECT_THROW(set->forward(fake_output(), torch::tensor({0, 0, 1, 1}, torch::kLong)), c10::Error);
  // Under its own name a second ce reports its own accuracy.
  registry.add("ce2", registry.builder("ce"));
  const auto r = LossSet(LossSetOptions().names({"ce", "ce2"}), registry)->forward(fake_output(), torch::tensor({0, 0, 1, 1}, torch::kLong));
  EXPECT_EQ(r.stats[1].first, "ce2_accuracy");
}

}  // namespace
}  // namespace reid::losses
