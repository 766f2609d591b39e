// Test features of image records (the evaluation's path): record order, labels, flip averaging.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/data/image_io.h"
#include "reid/data/synthetic.h"
#include "reid/deploy/extract.h"
#include "support.h"

namespace reid::deploy {
namespace {


TEST(Extract, ExtractsFeaturesInRecordOrderWithFlipAveraging) {
  torch::manual_seed(0);
  auto model = models::builtin_models().create("osnet_x0_25", models::ModelOptions());
  const auto records = test::synthetic_records(0, 5, 2);
  data::TransformOptions t;
  t.height = 64;
  t.width = 32;
  ExtractOptions options;
  options.batch_size = 3;
  const auto set = extract_features(*model, records, data::Transform(t), options);
  ASSERT_EQ(set.features.sizes(), (std::vector<int64_t>{10, 512}));
  EXPECT_EQ(set.pids[7].item<int64_t>(), 3);
  EXPECT_EQ(set.camids[7].item<int64_t>(), 1);
  EXPECT_EQ(set.paths[7], (*records)[7].path);
  EXPECT_TRUE(model->is_training()) << "the training flag is restored";
  // The same images through the model directly.
  model->eval();
  const data::Transform transform(t);
  const auto image = transform(data::read_image((*records)[4].path)).unsqueeze(0);
  const auto direct = model->extract_features(image)[0];
  EXPECT_TRUE(torch::allclose(direct, set.features[4], 1e-4, 1e-5));
  options.flip = true;
  const auto flipped = extract_features(*model, records, transform, options);
  const auto mirror = model->extract_features(image.flip({3}))[0];
  EXPECT_TRUE(torch::allclose(flipped.features[4], (direct + mirror) / 2, 1e-4, 1e-5));
}

}  // namespace
}  // namespace reid::deploy
