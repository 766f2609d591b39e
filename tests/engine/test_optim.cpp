#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/engine/optim.h"
#include "reid/models/model.h"

namespace reid::engine {
namespace {

TEST(Schedule, WarmupThenMultistep) {
  ScheduleOptions o;
  o.milestones = {40, 70};
  o.warmup_epochs = 10;
  o.warmup_factor = 0.01;
  EXPECT_DOUBLE_EQ(lr_factor(o, 0), 0.01);
  EXPECT_DOUBLE_EQ(lr_factor(o, 5), 0.01 * 0.5 + 0.5);
  EXPECT_DOUBLE_EQ(lr_factor(o, 10), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(o, 39), 1.0);
  EXPECT_NEAR(lr_factor(o, 40), 0.1, 1e-15);
  EXPECT_NEAR(lr_factor(o, 70), 0.01, 1e-15);
}

TEST(Schedule, CosineAfterFlatEpochs) {
  ScheduleOptions o;
  o.name = "cosine";
  o.max_epochs = 100;
  o.flat_epochs = 20;
  o.min_factor = 0.1;
  EXPECT_DOUBLE_EQ(lr_factor(o, 19), 1.0);
  EXPECT_DOUBLE_EQ(lr_factor(o, 20), 1.0);
  EXPECT_NEAR(lr_factor(o, 60), 0.1 + 0.9 * 0.5, 1e-12);
  EXPECT_NEAR(lr_factor(o, 100), 0.1, 1e-12);
  o.name = "constant";
  EXPECT_DOUBLE_EQ(lr_factor(o, 99), 1.0);
  o.name = "step";
  EXPECT_THROW(lr_factor(o, 1), ConfigError);
}

TEST(Optimizer, GroupsApplyBiasFactorAndNoDecay) {
  auto model = models::builtin_models().create(
      "osnet_x0_25", models::ModelOptions().head(models::HeadOptions().num_classes(5).neck(models::Neck::kBNNeck)));
  OptimizerOptions o;
  o.lr = 0.1;
  o.bias_lr_factor = 2.0;
  o.no_decay_norm_bias = true;
  o.weight_decay = 0.5;
  std::vector<torch::Tensor> frozen;
  for (const auto& p : model->parameters())
    if (!p.requires_grad()) frozen.push_back(p);
  ASSERT_EQ(frozen.size(), 1u) << "BNNeck's bias";
  auto built = build_optimizer(*model, o, frozen);
  int64_t total = 0;
  for (const auto& group : built.optimizer->param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    total += static_cast<int64_t>(group.params().size());
    const bool bias_group = options.lr() == 0.2;
    EXPECT_TRUE(options.lr() == 0.1 || bias_group);
    for (const auto& p : group.params()) EXPECT_TRUE(p.requires_grad());
    if (bias_group) {
      EXPECT_EQ(options.weight_decay(), 0.0);
    }
  }
  EXPECT_EQ(total, static_cast<int64_t>(model->parameters().size()) - 1);
  built.set_lr_factor(0.5);
  for (std::size_t i = 0; i < built.base_lrs.size(); ++i)
    EXPECT_DOUBLE_EQ(built.optimizer->param_groups()[i].options().get_lr(), built.base_lrs[i] * 0.5);
  // A conv weight keeps its decay; a BN weight loses it.
  o.name = "sgd";
  EXPECT_NO_THROW(build_optimizer(*model, o, frozen));
  o.name = "lamb";
  EXPECT_THROW(build_optimizer(*model, o, frozen), ConfigError);
}

TEST(Optimizer, AmsgradAndSgdStepTheParameters) {
  for (const std::string name : {"adam", "amsgrad", "sgd"}) {
    torch::nn::Linear layer(3, 1);
    OptimizerOptions o;
    o.name = name;
    o.lr = 0.1;
    auto built = build_optimizer(*layer, o);
    const auto before = layer->weight.clone();
    layer->forward(torch::ones({2, 3})).sum().backward();
    built.optimizer->step();
    EXPECT_FALSE(torch::equal(before, layer->weight)) << name;
  }
}

}  // namespace
}  // namespace reid::engine
