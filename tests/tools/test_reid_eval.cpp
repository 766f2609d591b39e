// reid-eval on .npy files gives the in-process numbers; bad inputs give one-line errors.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/eval/evaluator.h"
#include "reid/io/npy.h"
#include "support.h"

namespace reid {
namespace {

struct Files {
  test::TempDir dir;
  std::string args;
  eval::FeatureSet query, gallery;
  Files() {
    torch::manual_seed(0);
    const auto centres = torch::randn({20, 16}) * 2;
    const auto qp = torch::arange(20, torch::kLong), gp = torch::arange(100, torch::kLong).remainder(20);
    query = {centres + torch::randn({20, 16}), qp, torch::zeros({20}, torch::kLong), {}};
    gallery = {centres.index_select(0, gp) + torch::randn({100, 16}), gp, torch::arange(100, torch::kLong).remainder(3) + 1, {}};
    auto save = [&](const std::string& name, const torch::Tensor& t) {
      io::write_npy((dir / name).string(), t);
      return (dir / name).string();
    };
    args = " --query-features " + save("qf.npy", query.features) + " --query-pids " + save("qp.npy", qp) +
           " --query-camids " + save("qc.npy", query.camids) + " --gallery-features " + save("gf.npy", gallery.features) +
           " --gallery-pids " + save("gp.npy", gp) + " --gallery-camids " + save("gc.npy", gallery.camids);
  }
};

double json_number(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\": ");
  EXPECT_NE(at, std::string::npos) << key;
  return std::stod(json.substr(at + key.size() + 4));
}

// reid-eval links LibReID's CPU part only: evaluating features loads LibTorch's CPU library and
// none of its CUDA part (which costs ~230 MiB of resident memory at start-up). The dynamic
// loader's own log says which libraries the process opened.
TEST(ReidEval, LoadsNoCudaLibrary) {
  Files f;
  const auto r = test::run_command("LD_DEBUG=libs " + test::tool("reid-eval") + f.args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_NE(r.err.find("libtorch_cpu.so"), std::string::npos) << "no loader log to read:\n" << r.err.substr(0, 2000);
  // (libtorch_cpu.so itself needs the small CUDA runtime and CUPTI, for its profiler.)
  for (const char* cuda : {"libtorch_cuda.so", "libc10_cuda.so", "libcublas", "libcusparse", "libnvJitLink", "libreid_cuda"})
    EXPECT_EQ(r.err.find(cuda), std::string::npos) << cuda << " was loaded";
}

TEST(ReidEval, SameNumbersAsTheInProcessPath) {
  Files f;
  for (const std::string extra : {"", " --metric cosine", " --normalize --rerank --k1 8 --k2 3", " --query-expansion 2"}) {
    const auto json = (f.dir / "m.json").string();
    const auto r = test::run_command(test::tool("reid-eval") + f.args + extra + " --output " + json);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("mAP"), std::string::npos);
    eval::RetrievalOptions options;
    if (extra.find("cosine") != std::string::npos) options.metric = eval::Metric::kCosine;
    if (extra.find("normalize") != std::string::npos) options.normalize = true;
    if (extra.find("rerank") != std::string::npos) {
      options.rerank = true;
      options.rerank_options.k1 = 8;
      options.rerank_options.k2 = 3;
    }
    if (extra.find("expansion") != std::string::npos) options.query_expansion = 2;
    const auto expected = eval::evaluate_retrieval(f.query, f.gallery, options);
    const std::string text = test::read_file(json);
    EXPECT_NEAR(json_number(text, "mAP"), expected.mAP, 1e-7) << extra;
    EXPECT_NEAR(json_number(text, "mINP"), expected.mINP, 1e-7) << extra;
    EXPECT_NEAR(json_number(text, "rank1"), expected.cmc[0], 1e-7) << extra;
    EXPECT_NEAR(json_number(text, "rank10"), expected.cmc[9], 1e-7) << extra;
  }
}

TEST(ReidEval, TheOfficialMarketApOnRequest) {
  Files f;
  const auto json = (f.dir / "m.json").string();
  const auto r = test::run_command(test::tool("reid-eval") + f.args + " --ap trapezoid --output " + json);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("mAP (trapezoid) "), std::string::npos) << r.out;
  eval::RetrievalOptions options;
  options.eval.average_precision = eval::AveragePrecision::kTrapezoid;
  const auto expected = eval::evaluate_retrieval(f.query, f.gallery, options);
  const std::string text = test::read_file(json);
  EXPECT_NEAR(json_number(text, "mAP"), expected.mAP, 1e-7);
  EXPECT_LT(expected.mAP, eval::evaluate_retrieval(f.query, f.gallery, {}).mAP);
  EXPECT_NE(text.find("\"average_precision\": \"trapezoid\""), std::string::npos) << text;
  const auto bad = test::run_command(test::tool("reid-eval") + f.args + " --ap 11point");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--ap"), std::string::npos) << bad.err;
}

TEST(ReidEval, BadInputsFailWithOneLineNamingTheFile) {
  Files f;
  io::write_npy((f.dir / "short.npy").string(), torch::zeros({7}, torch::kLong));
  auto nan = f.gallery.features.clone();
  nan[5][2] = std::numeric_limits<float>::infinity();
  io::write_npy((f.dir / "nan.npy").string(), nan);
  io::write_npy((f.dir / "narrow.npy").string(), torch::zeros({100, 8}));
  test::write_file(f.dir / "junk.npy", "junk");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {f.args + " --query-pids " + (f.dir / "short.npy").string(), "short.npy: has 7 labels but the features have 20 rows"},
      {f.args + " --gallery-features " + (f.dir / "nan.npy").string(), "nan.npy: non-finite feature values"},
      {f.args + " --gallery-features " + (f.dir / "narrow.npy").string(), "gallery features have 8 dimensions"},
      {f.args + " --query-features " + (f.dir / "junk.npy").string(), "junk.npy: not a .npy file"},
      {f.args + " --metric manhattan", "manhattan"},
      {" --query-features x.npy", "required"},
  };
  for (const auto& c : cases) {
    const auto r = test::run_command(test::tool("reid-eval") + c.first);
    EXPECT_NE(r.exit_code, 0) << c.first;
    EXPECT_NE(r.err.find(c.second), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// Every output goes through the checked atomic writer: a write that fails (here a file-size
// limit of 0, which also raises SIGXFSZ) is one error naming the file, exit 1, and neither the
// file nor a temporary is left. The console goes through a pipe, which the limit spares.
TEST(ReidEval, AnOutputThatCannotBeWrittenIsAnErrorNotAnEmptyFile) {
  Files f;
  const auto json = f.dir / "metrics.json";
  const auto r = test::run_command("sh -c '{ (ulimit -f 0; exec " + test::tool("reid-eval") + f.args + " --output " +
                                   json.string() + ") 2>&1; echo \"exit status $?\"; } | cat'");
  EXPECT_NE(r.out.find("exit status 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("error: " + json.string() + ": cannot write the metrics: File too large"), std::string::npos)
      << r.out;
  EXPECT_FALSE(std::filesystem::exists(json));
  for (const auto& e : std::filesystem::directory_iterator(f.dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

}  // namespace
}  // namespace reid
