// Weight interop with Python: torchvision state dicts load into LibReID's ResNet-50 and give the
// same feature maps; LibReID weights load into torchvision the same way. Plus the strict and
// non-strict loading rules and bad files.
#include <gtest/gtest.h>

#include <cstdlib>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/models/model.h"
#include "reid/models/weights.h"
#include "support.h"

namespace reid::models {
namespace {

std::string interop_script() {
  return (test::source_dir() / "tests/python/torchvision_interop.py").string();
}

ReidModel resnet50(int64_t num_classes) {
  return builtin_models().create(
      "resnet50", ModelOptions().last_stride(2).head(HeadOptions().num_classes(num_classes)));
}

TEST(WeightInterop, TorchvisionResNet50LoadsIntoLibReID) {
  REID_REQUIRE_PYTHON();
  test::TempDir dir;
  const auto r = test::run_command(test::python() + " " + interop_script() + " export " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;

  auto model = resnet50(0);
  const auto report = load_weights(*model, (dir / "torchvision.pt").string(), /*strict=*/false);
  EXPECT_TRUE(report.missing.empty()) << report.summary();
  EXPECT_EQ(report.unexpected, (std::vector<std::string>{"fc.bias", "fc.weight"}));
  EXPECT_TRUE(report.mismatched.empty());
  EXPECT_EQ(report.loaded.size(), 318u) << "159 parameters + 53 BN layers x 3 buffers";

  const auto io = read_state_dict((dir / "io.pt").string());
  model->eval();
  torch::NoGradGuard no_grad;
  const auto map = model->featuremaps(io.at("input"));
  const double diff = (map - io.at("featuremap")).abs().max().item<double>();
  EXPECT_LT(diff, 1e-4);

  // Strict loading of the same file fails and names the keys.
  try {
    load_weights(*resnet50(0), (dir / "torchvision.pt").string(), /*strict=*/true);
    FAIL() << "strict loading should fail on fc.*";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected (ignored): fc.bias, fc.weight"), std::string::npos)
        << e.what();
  }
}

TEST(WeightInterop, LibReIDWeightsLoadIntoTorchvision) {
  REID_REQUIRE_PYTHON();
  test::TempDir dir;
  torch::manual_seed(3);
  auto model = resnet50(10);
  model->train();
  {
    torch::NoGradGuard no_grad;
    model->forward(torch::randn({4, 3, 128, 64}));
  }
  model->eval();
  save_weights(*model, (dir / "libreid.pt").string());
  const auto x = torch::randn({2, 3, 256, 128});
  torch::Tensor map;
  {
    torch::NoGradGuard no_grad;
    map = model->featuremaps(x);
  }
  write_state_dict({{"input", x}, {"featuremap", map}}, (dir / "libreid_io.pt").string());
  const auto r = test::run_command(test::python() + " " + interop_script() + " import " + dir.path().string());
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("missing: fc.bias,fc.weight\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unexpected: classifier.bias,classifier.weight\n"), std::string::npos) << r.out;
}

TEST(WeightInterop, TorchreidStyleCheckpointFromPython) {
  REID_REQUIRE_PYTHON();
  test::TempDir dir;
  const auto r = test::run_command(test::python() + " " + interop_script() + " checkpoint " + dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto state = read_state_dict((dir / "checkpoint.pth").string());
  std::vector<std::string> names;
  for (const auto& entry : state) names.push_back(entry.first);
  EXPECT_EQ(names, (std::vector<std::string>{"0.bias", "0.weight", "1.bias", "1.num_batches_tracked",
                                             "1.running_mean", "1.running_var", "1.weight", "half"}));
  EXPECT_EQ(state.at("1.num_batches_tracked").scalar_type(), torch::kLong);
  EXPECT_EQ(state.at("1.num_batches_tracked").item<int64_t>(), 1);
  EXPECT_EQ(state.at("half").scalar_type(), torch::kHalf);
  EXPECT_TRUE(torch::equal(state.at("half").to(torch::kFloat),
                           torch::tensor({{1.0f, 2.0f}, {4.0f, 5.0f}})));
  // The same tensors saved as a plain dict read identically.
  const auto expected = read_state_dict((dir / "expected.pt").string());
  for (const auto& entry : expected) EXPECT_TRUE(torch::equal(entry.second, state.at(entry.first))) << entry.first;
}

TEST(Weights, NonStrictSkipsShapeMismatchesAndKeepsTheRest) {
  test::TempDir dir;
  auto source = builtin_models().create("osnet_x0_25", ModelOptions().head(HeadOptions().num_classes(751)));
  save_weights(*source, (dir / "w.pt").string());
  auto target = builtin_models().create("osnet_x0_25", ModelOptions().head(HeadOptions().num_classes(10)));
  const auto before = target->named_parameters()["classifier.weight"].clone();
  const auto report = load_weights(*target, (dir / "w.pt").string(), /*strict=*/false);
  EXPECT_EQ(report.mismatched.size(), 2u) << report.summary();
  EXPECT_TRUE(torch::equal(target->named_parameters()["classifier.weight"], before));
  EXPECT_TRUE(torch::equal(target->named_parameters()["conv1.conv.weight"],
                           source->named_parameters()["conv1.conv.weight"]));
  // Strict loading refuses and leaves the model untouched.
  auto strict = builtin_models().create("osnet_x0_25", ModelOptions().head(HeadOptions().num_classes(10)));
  const auto conv_before = strict->named_parameters()["conv1.conv.weight"].clone();
  EXPECT_THROW(load_weights(*strict, (dir / "w.pt").string(), true), IOError);
  EXPECT_TRUE(torch::equal(strict->named_parameters()["conv1.conv.weight"], conv_before));
}

TEST(Weights, CheckpointWrappersAndDataParallelPrefixesAreUnwrapped) {
  test::TempDir dir;
  const auto t = torch::arange(4.0f);
  c10::Dict<std::string, torch::Tensor> inner;
  inner.insert("module.conv.weight", t);
  c10::impl::GenericDict outer(c10::StringType::get(), c10::AnyType::get());
  outer.insert(std::string("state_dict"), inner);
  outer.insert(std::string("epoch"), int64_t{7});
  const auto bytes = torch::pickle_save(outer);
  test::write_file(dir / "ckpt.pth", std::string(bytes.begin(), bytes.end()));
  const auto state = read_state_dict((dir / "ckpt.pth").string());
  ASSERT_EQ(state.size(), 1u);
  EXPECT_TRUE(torch::equal(state.at("conv.weight"), t));
}

TEST(Weights, BadFilesNameThePath) {
  test::TempDir dir;
  const auto missing = (dir / "none.pt").string();
  try {
    read_state_dict(missing);
    FAIL();
  } catch (const IOError& e) {
    EXPECT_EQ(e.path(), missing);
  }
  test::write_file(dir / "empty.pt", "");
  EXPECT_THROW(read_state_dict((dir / "empty.pt").string()), IOError);
  test::write_file(dir / "text.pt", "not a tensor file at all");
  try {
    read_state_dict((dir / "text.pt").string());
    FAIL();
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("zip-format"), std::string::npos) << e.what();
  }
  // A truncated zip archive.
  auto model = builtin_models().create("osnet_x0_25", ModelOptions());
  save_weights(*model, (dir / "w.pt").string());
  const std::string bytes = test::read_file(dir / "w.pt");
  test::write_file(dir / "cut.pt", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(read_state_dict((dir / "cut.pt").string()), IOError);
}

}  // namespace
}  // namespace reid::models
