// The ViT backbones: torchvision's vit_b_16 weights give the same class-token feature (224 x 224,
// and 256 x 128 with overlapping patches and resized position embeddings, against the same
// computation in PyTorch), patch grids and the position-embedding resize by hand, drop-path,
// parameter counts, the head on the class token, and the errors.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/models/model.h"
#include "reid/models/vit.h"
#include "reid/models/weights.h"
#include "support.h"

namespace reid::models {
namespace {

std::shared_ptr<ViTImpl> vit(const std::string& name, ModelOptions options) {
  auto model = std::dynamic_pointer_cast<ViTImpl>(builtin_models().create(name, options));
  EXPECT_TRUE(model);
  return model;
}

TEST(ViT, PatchGridsOfOverlappingPatches) {
  EXPECT_EQ(vit_patches(224, 16, 16), 14);
  EXPECT_EQ(vit_patches(256, 16, 12), 21);  // (256 - 16) / 12 + 1
  EXPECT_EQ(vit_patches(128, 16, 12), 10);  // (128 - 16) / 12 + 1 = 10.33
  EXPECT_EQ(vit_patches(256, 16, 16), 16);
  EXPECT_THROW(vit_patches(8, 16, 16), Error);
  const auto model = vit("vit_small_patch16", ModelOptions().patch_stride(12).drop_path(0.0));
  EXPECT_EQ(model->grid(), std::make_pair(int64_t{21}, int64_t{10}));
  EXPECT_EQ(model->pos_embed.sizes(), (std::vector<int64_t>{1, 211, 384}));
  model->eval();
  torch::NoGradGuard no_grad;
  EXPECT_EQ(model->featuremaps(torch::randn({1, 3, 256, 128})).sizes(), (std::vector<int64_t>{1, 384, 21, 10}));
}

TEST(ViT, PositionEmbeddingResizeIsBilinearOnTheGridAndKeepsTheClassToken) {
  // A 2 x 2 grid of one channel, values 0 1 / 2 3, resized to 4 x 2 (rows x cols). Bilinear with
  // align_corners false samples source row (i + 0.5) / 2 - 0.5, clamped: rows 0, 0.25, 0.75, 1;
  // cols (j + 0.5) - 0.5 = 0, 1.
  auto embedding = torch::tensor({9.0, 0.0, 1.0, 2.0, 3.0}, torch::kDouble).view({1, 5, 1});
  const auto resized = resize_position_embedding(embedding, 4, 2);
  const auto expected = torch::tensor({9.0, 0.0, 1.0, 0.5, 1.5, 1.5, 2.5, 2.0, 3.0}, torch::kDouble).view({1, 9, 1});
  EXPECT_TRUE(torch::allclose(resized, expected)) << resized;
  // The same grid is returned unchanged; a non-square one without its shape is refused.
  EXPECT_TRUE(torch::equal(resize_position_embedding(embedding, 2, 2), embedding));
  EXPECT_THROW(resize_position_embedding(torch::zeros({1, 7, 3}), 2, 2), c10::Error);
}

TEST(ViT, TorchvisionWeightsGiveTheSameClassTokenFeature) {
  REID_REQUIRE_PYTHON();
  test::TempDir dir;
  const auto r = test::run_command(test::python() + " " +
                                   (test::source_dir() / "tests/python/vit_interop.py").string() + " export " +
                                   dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto io = read_state_dict((dir / "io.pt").string());

  // 224 x 224, 16-pixel stride: torchvision's own network.
  auto model = vit("vit_base_patch16", ModelOptions().height(224).width(224).drop_path(0.0));
  EXPECT_EQ(count_parameters(*model), io.at("parameters").item<int64_t>()) << "parameters without a classifier";
  const auto report = load_weights(*model, (dir / "torchvision.pt").string(), /*strict=*/true);
  EXPECT_EQ(report.loaded.size(), 4u + 12u * 12u + 2u) << report.summary();
  model->eval();
  torch::NoGradGuard no_grad;
  const auto feature = model->extract_features(io.at("input"));
  const auto reference = io.at("feature");
  const double relative = ((feature - reference).norm() / reference.norm()).item<double>();
  EXPECT_LT(relative, 1e-4);

  // 256 x 128 with patches every 12 pixels: the position embeddings are resized on loading.
  auto reid = vit("vit_base_patch16", ModelOptions().patch_stride(12).drop_path(0.0));
  load_weights(*reid, (dir / "torchvision.pt").string(), /*strict=*/true);
  reid->eval();
  const auto feature_reid = reid->extract_features(io.at("input_reid"));
  const auto reference_reid = io.at("feature_reid");
  EXPECT_LT(((feature_reid - reference_reid).norm() / reference_reid.norm()).item<double>(), 1e-4);

  std::cerr << "relative difference to PyTorch: " << relative << " at 224 x 224, "
            << ((feature_reid - reference_reid).norm() / reference_reid.norm()).item<double>()
            << " at 256 x 128 with stride 12\n";
}

TEST(ViT, TimmNamesAreTheModelsOwnAndClassifiersAreDropped) {
  auto model = vit("vit_small_patch16", ModelOptions().height(64).width(32).drop_path(0.0));
  std::map<std::string, torch::Tensor> state;
  for (const auto& item : model->named_parameters()) state[item.key()] = item.value().detach().clone() + 0.5;
  for (const auto& name : {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.norm1.weight",
                           "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.bias", "blocks.11.mlp.fc1.weight",
                           "blocks.11.mlp.fc2.bias", "norm.weight"})
    EXPECT_TRUE(state.count(name)) << name;
  state["head.weight"] = torch::zeros({1000, 384});
  state["head.bias"] = torch::zeros({1000});
  // A timm checkpoint at 224: 14 x 14 positions, resized to this model's 4 x 2.
  state["pos_embed"] = torch::randn({1, 197, 384});
  auto copy = state;
  model->adapt_state_dict(copy);
  EXPECT_FALSE(copy.count("head.weight"));
  EXPECT_EQ(copy.at("pos_embed").sizes(), (std::vector<int64_t>{1, 9, 384}));
  EXPECT_TRUE(torch::equal(copy.at("pos_embed").narrow(1, 0, 1), state.at("pos_embed").narrow(1, 0, 1)));
  EXPECT_TRUE(torch::equal(copy.at("blocks.3.attn.qkv.weight"), state.at("blocks.3.attn.qkv.weight")));
  // A grid that is not square cannot be resized without its shape.
  copy = state;
  copy["pos_embed"] = torch::randn({1, 7, 384});
  EXPECT_THROW(model->adapt_state_dict(copy), Error);
}

TEST(ViT, BNNeckHeadOnTheClassTokenAndDropPathOnlyInTraining) {
  torch::manual_seed(0);
  const auto head = HeadOptions().num_classes(5).neck(Neck::kBNNeck);
  auto model = vit("vit_small_patch16", ModelOptions().height(64).width(32).drop_path(0.5).head(head));
  const auto x = torch::randn({4, 3, 64, 32});
  model->train();
  const auto out = model->forward(x, torch::tensor({0, 1, 2, 3}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(out.global_feat.sizes(), (std::vector<int64_t>{4, 384}));
  out.logits.sum().backward();
  EXPECT_GT(model->cls_token.grad().abs().sum().item<double>(), 0.0);
  // Stochastic depth draws in training and is off in eval mode.
  torch::NoGradGuard no_grad;
  const auto a = model->forward(x).global_feat, b = model->forward(x).global_feat;
  EXPECT_FALSE(torch::allclose(a, b));
  model->eval();
  EXPECT_TRUE(torch::equal(model->extract_features(x), model->extract_features(x)));
  EXPECT_EQ(model->feature_dim(), 384);
}

TEST(ViT, RefusesWhatItCannotDo) {
  auto model = vit("vit_small_patch16", ModelOptions().height(64).width(32));
  model->eval();
  torch::NoGradGuard no_grad;
  try {
    model->extract_features(torch::randn({1, 3, 128, 64}));
    FAIL() << "another input size";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("built for 64 x 32 images (4 x 2 patches); these are 128 x 64"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(builtin_models().create("vit_small_patch16",
                                       ModelOptions().height(64).width(32).head(HeadOptions().pooling(Pooling::kGeM))),
               Error);
}

}  // namespace
}  // namespace reid::models
