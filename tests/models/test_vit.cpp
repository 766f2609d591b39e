// The ViT backbones: torchvision's vit_b_16 weights give the same class-token feature (224 x 224,
// and 256 x 128 with overlapping patches and resized position embeddings, against the same
// computation in PyTorch), patch grids and the position-embedding resize by hand, drop-path,
// parameter counts, the head on the class token, and the errors.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/losses/loss_set.h"
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
  EXPECT_EQ(out.logits().sizes(), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(out.embedding().sizes(), (std::vector<int64_t>{4, 384}));
  out.logits().sum().backward();
  EXPECT_GT(model->cls_token.grad().abs().sum().item<double>(), 0.0);
  // Stochastic depth draws in training and is off in eval mode.
  torch::NoGradGuard no_grad;
  const auto a = model->forward(x).embedding(), b = model->forward(x).embedding();
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

// ---- TransReID: SIE and JPM ---------------------------------------------------------------------

std::vector<int64_t> order(const torch::Tensor& rearranged) {
  const auto flat = rearranged.select(0, 0).select(1, 0).to(torch::kLong);
  return std::vector<int64_t>(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
}

TEST(TransReID, JpmShiftAndShuffleIndicesByHand) {
  const auto patches = [](int64_t n) { return torch::arange(n, torch::kDouble).view({1, n, 1}); };
  // 10 patches, shift 3: TransReID's slice starts at token 3 of [cls, p0 .. p9], i.e. patch 2:
  // 2 3 4 5 6 7 8 9 0 1. Two shuffle groups read as rows [2 3 4 5 6] / [7 8 9 0 1], column-wise:
  EXPECT_EQ(order(jpm_rearrange(patches(10), 3, 2)), (std::vector<int64_t>{2, 7, 3, 8, 4, 9, 5, 0, 6, 1}));
  // Shift 1 moves nothing; 7 patches do not divide by 2: the second-to-last (5) is appended.
  EXPECT_EQ(order(jpm_rearrange(patches(7), 1, 2)), (std::vector<int64_t>{0, 4, 1, 5, 2, 6, 3, 5}));
  // ... by 3: appended twice (5, then the new second-to-last, 6): rows 0 1 2 / 3 4 5 / 6 5 6.
  EXPECT_EQ(order(jpm_rearrange(patches(7), 1, 3)), (std::vector<int64_t>{0, 3, 6, 1, 4, 5, 2, 5, 6}));
  // TransReID's setting at 256 x 128, stride 12: 210 patches, shift 5, 2 groups; token j comes
  // from shifted position (j % 2) * 105 + j / 2, i.e. patch (that + 4) mod 210.
  const auto big = order(jpm_rearrange(patches(210), 5, 2));
  ASSERT_EQ(big.size(), 210u);
  for (int64_t j = 0; j < 210; ++j) EXPECT_EQ(big[static_cast<std::size_t>(j)], ((j % 2) * 105 + j / 2 + 4) % 210);
  // Features move whole: a [N, P, D] tensor keeps each token's D values together.
  const auto x = torch::randn({2, 10, 3});
  const auto y = jpm_rearrange(x, 3, 2);
  EXPECT_TRUE(torch::equal(y.select(1, 1), x.select(1, 7)));
  EXPECT_THROW(jpm_rearrange(x, 0, 2), Error);
  EXPECT_THROW(jpm_rearrange(x, 11, 2), Error);
  EXPECT_THROW(jpm_rearrange(x, 1, 11), Error);
}

ViTOptions small_transreid() {
  return ViTOptions()
      .dim(64)
      .heads(4)
      .depth(3)
      .mlp_dim(128)
      .stride(12)
      .height(64)
      .width(32)
      .drop_path(0.0)
      .cameras(3)
      .jpm(true)
      .head(HeadOptions().num_classes(5).neck(Neck::kBNNeck));
}

TEST(TransReID, SieAndJpmMatchAPyTorchModelWrittenInTheTest) {
  REID_REQUIRE_PYTHON();
  test::TempDir dir;
  const auto r = test::run_command(test::python() + " " +
                                   (test::source_dir() / "tests/python/vit_interop.py").string() + " transreid " +
                                   dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto io = read_state_dict((dir / "transreid_io.pt").string());
  auto model = std::make_shared<ViTImpl>(small_transreid(), "transreid");
  EXPECT_EQ(count_parameters(*model), io.at("parameters").item<int64_t>());
  const auto report = load_weights(*model, (dir / "transreid.pt").string(), /*strict=*/true);
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty()) << report.summary();
  EXPECT_EQ(model->feature_dim(), 5 * 64);
  const auto images = io.at("input"), cameras = io.at("cameras"), labels = io.at("labels");
  const auto relative = [](const torch::Tensor& a, const torch::Tensor& b) {
    return ((a - b).norm() / b.norm()).item<double>();
  };
  torch::NoGradGuard no_grad;
  model->eval();
  // Test feature: each image with its camera's embedding, and camera-agnostic.
  EXPECT_LT(relative(model->forward(images, {}, cameras).feature, io.at("feature")), 1e-5);
  EXPECT_LT(relative(model->forward(images).feature, io.at("agnostic")), 1e-5);
  EXPECT_GT(relative(io.at("agnostic"), io.at("feature")), 1e-3) << "the camera embedding must matter";
  // Unknown cameras (camid < 0) take the mean embedding, row by row.
  const auto mixed = model->forward(images, {}, torch::tensor({0, -1, 2, -1, 1, 2})).feature;
  EXPECT_LT(relative(mixed.select(0, 1), io.at("agnostic").select(0, 1)), 1e-5);
  EXPECT_LT(relative(mixed.select(0, 2), io.at("feature").select(0, 2)), 1e-5);
  try {
    model->forward(images, {}, torch::tensor({0, 1, 2, 3, 1, 2}));
    FAIL() << "a camera the embedding does not have";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("camera id 3 is outside the 3 cameras"), std::string::npos) << e.what();
  }
  // Training: 1 global + 4 local outputs; the loss set's "ce" weighs them 0.5 / 0.5 as TransReID.
  model->train();
  const auto out = model->forward(images, labels, cameras);
  ASSERT_EQ(out.embeddings.size(), 5u);
  ASSERT_EQ(out.class_logits.size(), 5u);
  EXPECT_EQ(out.embeddings[3].first, "local_3");
  EXPECT_LT(relative(out.embeddings[3].second, io.at("local_3")), 1e-5);
  losses::LossSet loss(losses::LossSetOptions().names({"ce"}).ce_epsilon(0.1));
  EXPECT_NEAR(loss->forward(out, labels).total.item<double>(), io.at("ce").item<double>(), 1e-5);
  auto unweighted = out;
  unweighted.weights.clear();
  EXPECT_GT(std::abs(loss->forward(unweighted, labels).total.item<double>() - io.at("ce").item<double>()), 1e-4)
      << "the plain mean over the 5 outputs is not TransReID's loss";
}

TEST(TransReID, PlainViTWeightsStartBothJpmBranchesAndSieIsOptional) {
  torch::manual_seed(0);
  auto plain = std::make_shared<ViTImpl>(small_transreid().cameras(0).jpm(false), "plain");
  auto jpm = std::make_shared<ViTImpl>(small_transreid(), "transreid");
  // JPM: the shared trunk stops before the last block; b1 and b2 are copies of it.
  const auto names = jpm->named_parameters();
  EXPECT_FALSE(names.contains("blocks.2.attn.qkv.weight"));
  EXPECT_FALSE(names.contains("norm.weight"));
  EXPECT_TRUE(names.contains("sie_embed") && names.contains("b2.0.mlp.fc2.bias") && names.contains("bottleneck_4.weight") &&
              names.contains("classifier_4.weight"));
  EXPECT_TRUE(torch::equal(names["b1.0.attn.qkv.weight"], names["b2.0.attn.qkv.weight"]));
  std::map<std::string, torch::Tensor> state;
  for (const auto& item : plain->named_parameters()) state[item.key()] = item.value().detach();
  jpm->adapt_state_dict(state);
  EXPECT_TRUE(torch::equal(state.at("b1.0.attn.qkv.weight"), plain->named_parameters()["blocks.2.attn.qkv.weight"]));
  EXPECT_TRUE(torch::equal(state.at("b2.1.weight"), plain->named_parameters()["norm.weight"]));
  EXPECT_FALSE(state.count("blocks.2.attn.qkv.weight") || state.count("norm.weight"));
  // TransReID's own checkpoints keep the backbone under "base.".
  std::map<std::string, torch::Tensor> prefixed = {{"base.cls_token", torch::ones({1, 1, 64})}};
  jpm->adapt_state_dict(prefixed);
  EXPECT_TRUE(prefixed.count("cls_token"));
  // Without SIE there is no camera embedding and camera ids change nothing.
  auto no_sie = std::make_shared<ViTImpl>(small_transreid().cameras(0), "jpm_only");
  EXPECT_FALSE(no_sie->named_parameters().contains("sie_embed"));
  no_sie->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, 3, 64, 32});
  EXPECT_TRUE(torch::equal(no_sie->forward(x).feature, no_sie->forward(x, {}, torch::tensor({0, 7})).feature));
  EXPECT_THROW(std::make_shared<ViTImpl>(small_transreid().jpm_groups(11), "t"), Error);  // 10 patches
  EXPECT_THROW(std::make_shared<ViTImpl>(small_transreid().jpm_shift(11), "t"), Error);
}

// Every part trains: a small TransReID (SIE + JPM) memorises a batch of 4 identities x 4 images
// (with the loss set's CE + triplet), and the camera embedding and the local branch get gradients.
TEST(TransReID, ASmallModelLearnsAndEveryPartGetsGradients) {
  torch::manual_seed(3);
  auto model = std::make_shared<ViTImpl>(small_transreid().head(HeadOptions().num_classes(4).neck(Neck::kBNNeck)), "t");
  losses::LossSet loss(losses::LossSetOptions().names({"ce", "triplet"}).ce_epsilon(0.0));
  const auto labels = torch::arange(4).repeat_interleave(4);
  const auto cameras = torch::arange(16) % 3;
  // Each identity a colour pattern plus noise: learnable, not trivially separable by one pixel.
  const auto base = torch::randn({4, 3, 64, 32});
  const auto images = base.index_select(0, labels) + 0.5 * torch::randn({16, 3, 64, 32});
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-3));
  model->train();
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 30; ++step) {
    optimizer.zero_grad();
    const auto total = loss->forward(model->forward(images, labels, cameras), labels).total;
    total.backward();
    if (step == 0) {
      EXPECT_GT(model->sie_embed.grad().abs().sum().item<double>(), 0.0);
      for (const auto& p : model->named_parameters())
        if ((p.key().rfind("b2.", 0) == 0 || p.key().rfind("bottleneck_3.", 0) == 0) && p.value().requires_grad()) {
          EXPECT_TRUE(p.value().grad().defined()) << p.key();
        }
      first = total.item<double>();
    }
    last = total.item<double>();
    optimizer.step();
  }
  EXPECT_LT(last, 0.3 * first) << "first " << first << ", last " << last;
  // The test feature ranks each image's identity first among the others' images.
  model->eval();
  torch::NoGradGuard no_grad;
  const auto f = torch::nn::functional::normalize(model->forward(images, {}, cameras).feature,
                                                  torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto similarity = f.mm(f.t());
  similarity.fill_diagonal_(-2.0);
  const auto nearest = labels.index_select(0, similarity.argmax(1));
  EXPECT_GE(nearest.eq(labels).sum().item<int64_t>(), 14);
}

}  // namespace
}  // namespace reid::models
