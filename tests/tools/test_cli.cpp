// The executables' command-line contract: --print-config, --set, one-line errors, outputs.
#include <gtest/gtest.h>

#include "reid/models/weights.h"
#include "reid/utils/strings.h"
#include "support.h"

namespace reid {
namespace {

using test::run_command;
using test::tool;

std::string quickstart() { return (test::source_dir() / "configs/quickstart.yaml").string(); }

int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

TEST(Cli, PrintConfigAppliesOverrides) {
  for (const std::string exe : {"reid-train", "reid-test"}) {
    const auto r = run_command(tool(exe) + " -c " + quickstart() +
                               " --set solver.base_lr=0.1 --set data.sources=[a,b] --print-config");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("base_lr: 0.1\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("sources: [a, b]"), std::string::npos) << r.out;
    EXPECT_TRUE(r.err.empty()) << r.err;
  }
}

TEST(Cli, CommandLineOptionsOverrideConfigKeys) {
  const auto r = run_command(tool("reid-train") + " -c " + quickstart() +
                             " -o /tmp/x --device cpu --threads 3 --print-config");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("output_dir: /tmp/x\n"), std::string::npos);
  EXPECT_NE(r.out.find("threads: 3\n"), std::string::npos);
  const auto w = run_command(tool("reid-test") + " --weights /a/b.pt --print-config");
  EXPECT_NE(w.out.find("weights: /a/b.pt\n"), std::string::npos) << w.out;
}

TEST(Cli, TypoInSetFailsWithOneLineNamingKeyAndSuggestion) {
  const auto r = run_command(tool("reid-train") + " -c " + quickstart() +
                             " --set solver.bsae_lr=1 --print-config");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.err, "error: solver.bsae_lr: unknown key (did you mean 'solver.base_lr'?)\n");
  EXPECT_TRUE(r.out.empty());
}

TEST(Cli, ErrorsAreOneLineWithNonZeroExit) {
  const std::vector<std::string> commands = {
      tool("reid-train") + " -c /nonexistent/config.yaml",
      tool("reid-train") + " --no-such-option",
      tool("reid-test") + " --threads many",
      tool("reid-train") + " --device gpu0 --print-config",
  };
  const std::vector<int> codes = {1, 2, 2, 1};  // 2: command-line usage, 1: anything else
  for (std::size_t i = 0; i < commands.size(); ++i) {
    const auto& command = commands[i];
    const auto r = run_command(command);
    EXPECT_EQ(r.exit_code, codes[i]) << command;
    EXPECT_EQ(count_lines(r.err), 1) << command << "\n" << r.err;
    EXPECT_TRUE(utils::starts_with(r.err, "error: ")) << r.err;
  }
}

TEST(Cli, RunErrorsGoToStderrOnceAndToTheLog) {
  test::TempDir dir;
  const auto r = run_command(tool("reid-train") + " --set data.root=" + (dir / "nowhere").string() + " -o " +
                             (dir / "run").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err.substr(r.err.find("error: "))), 1) << r.err;
  EXPECT_NE(r.err.find("error: " + (dir / "nowhere").string() + "/market1501"), std::string::npos) << r.err;
  const std::string log = test::read_file(dir / "run/log.txt");
  EXPECT_NE(log.find("error " + (dir / "nowhere").string() + "/market1501"), std::string::npos) << log;
  EXPECT_TRUE(test::fs::exists(dir / "run/config.yaml"));
}

TEST(Cli, HelpListsTheOptions) {
  const auto r = run_command(tool("reid-train") + " --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const std::string option : {"--config", "--output-dir", "--set", "--print-config",
                                   "--device", "--threads", "--verbose", "--resume"})
    EXPECT_NE(r.out.find(option), std::string::npos) << option;
  const auto t = run_command(tool("reid-test") + " --help");
  EXPECT_NE(t.out.find("--weights"), std::string::npos);
}

// The transformer recipe as shipped (ViT-B/16, BNNeck, SGD + cosine, CE + soft-margin
// triplet), on synthetic data at a small size for two epochs of one batch: it resolves, builds,
// trains (finite losses) and evaluates.
TEST(Recipes, TheViTRecipeTrainsAFewSyntheticSteps) {
  test::TempDir dir;
  const auto r = run_command(tool("reid-train") + " -c " + (test::source_dir() / "configs/vit_base_bot_market1501.yaml").string() +
                             " -o " + (dir / "run").string() +
                             " --set data.sources=[synthetic] --set data.targets=[synthetic] --set data.height=64"
                             " --set data.width=32 --set data.synthetic.train_ids=4 --set data.synthetic.test_ids=3"
                             " --set data.synthetic.images_per_camera=2 --set data.synthetic.height=64"
                             " --set data.synthetic.width=32 --set data.batch_size=8 --set data.workers=1"
                             " --set solver.max_epochs=2 --set solver.warmup_epochs=1 --set solver.eval_period=2"
                             " --set solver.checkpoint_period=2 --set test.batch_size=16 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string log = test::read_file(dir / "run" / "log.txt");
  EXPECT_NE(log.find("vit_base_patch16"), std::string::npos) << log;
  EXPECT_NE(log.find("final synthetic"), std::string::npos) << log;
  EXPECT_EQ(log.find("nan"), std::string::npos) << log;
}

TEST(Recipes, TheMarsRecipeTrainsAClipModelOnSyntheticTracklets) {
  test::TempDir dir;
  const auto r = run_command(tool("reid-train") + " -c " + (test::source_dir() / "configs/tp_resnet50_mars.yaml").string() +
                             " -o " + (dir / "run").string() +
                             " --set data.sources=[synthetic_video] --set data.targets=[synthetic_video]"
                             " --set data.height=64 --set data.width=32 --set data.seq_len=2"
                             " --set data.synthetic.train_ids=4 --set data.synthetic.test_ids=2"
                             " --set data.synthetic.cameras=2 --set data.synthetic.frames=3 --set data.synthetic.height=64"
                             " --set data.synthetic.width=32 --set data.batch_size=8 --set data.workers=1"
                             " --set solver.max_epochs=1 --set solver.milestones=[] --set solver.eval_period=1"
                             " --set solver.checkpoint_period=1 --set test.batch_size=8 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string log = test::read_file(dir / "run" / "log.txt");
  EXPECT_NE(log.find("tracklets"), std::string::npos) << log;
  EXPECT_NE(log.find("avg pooling over time"), std::string::npos) << log;
  EXPECT_NE(log.find("final synthetic_video"), std::string::npos) << log;
}

TEST(Recipes, TheTransReIDRecipeTrainsWithCameraIdsAndTestsCameraAgnosticToo) {
  test::TempDir dir;
  const std::string small =
      " --set data.sources=[synthetic] --set data.targets=[synthetic] --set data.height=64 --set data.width=32"
      " --set data.synthetic.train_ids=4 --set data.synthetic.test_ids=3 --set data.synthetic.cameras=3"
      " --set data.synthetic.images_per_camera=2 --set data.synthetic.height=64 --set data.synthetic.width=32"
      " --set test.batch_size=16 --threads 2";
  const auto config = (test::source_dir() / "configs/transreid_vit_base_market1501.yaml").string();
  const auto r = run_command(tool("reid-train") + " -c " + config + " -o " + (dir / "run").string() + small +
                             " --set data.batch_size=8 --set data.workers=1 --set solver.max_epochs=2"
                             " --set solver.warmup_epochs=1 --set solver.eval_period=2 --set solver.checkpoint_period=2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string log = test::read_file(dir / "run" / "log.txt");
  EXPECT_NE(log.find("final synthetic"), std::string::npos) << log;
  EXPECT_EQ(log.find("nan"), std::string::npos) << log;
  // The weights hold one camera embedding per training camera and both JPM branches.
  const auto state = models::read_state_dict((dir / "run" / "model_final.pt").string());
  ASSERT_TRUE(state.count("sie_embed"));
  EXPECT_EQ(state.at("sie_embed").size(0), 3);
  EXPECT_TRUE(state.count("b2.0.attn.qkv.weight") && state.count("classifier_4.weight"));
  // reid-test rebuilds the model from the weights (3 cameras), with and without camera ids.
  for (const char* ids : {"true", "false"}) {
    const auto t = run_command(tool("reid-test") + " -c " + config + " -o " + (dir / "run").string() + small +
                               " --set test.camera_ids=" + ids);
    EXPECT_EQ(t.exit_code, 0) << ids << ": " << t.err;
    EXPECT_NE(t.out.find("mAP"), std::string::npos) << t.out;
  }
}

}  // namespace
}  // namespace reid
