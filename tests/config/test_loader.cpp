#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "support.h"

namespace reid::config {
namespace {

using test::TempDir;
using test::write_file;

// Expects `body` to throw E whose what() contains every one of `parts`; returns the message.
template <class E>
std::string expect_error(const std::function<void()>& body, const std::vector<std::string>& parts) {
  try {
    body();
  } catch (const E& e) {
    const std::string message = e.what();
    for (const auto& part : parts)
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
    return message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "unexpected exception type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no exception thrown";
  return {};
}

TEST(ConfigLoader, DefaultsWithoutAFile) {
  const Config config = load_config("");
  EXPECT_EQ(config.model.name, "osnet_x1_0");
  EXPECT_EQ(config.data.height, 256);
  EXPECT_EQ(config.threads, 0);
  EXPECT_EQ(config.loss.names, std::vector<std::string>{"ce"});
}

TEST(ConfigLoader, ReadsValuesOfEveryType) {
  const Config config = parse_config(R"(
model: {name: resnet50, last_stride: 2, neck: bnneck}
data:
  sources: [market1501, dukemtmcreid]
  mean: [0.5, 0.5, 0.5]
  skip_bad_images: yes
solver: {base_lr: 1e-3, milestones: [10, 20]}
seed: 3
)");
  EXPECT_EQ(config.model.name, "resnet50");
  EXPECT_EQ(config.model.last_stride, 2);
  EXPECT_EQ(config.data.sources, (std::vector<std::string>{"market1501", "dukemtmcreid"}));
  EXPECT_EQ(config.data.mean, (std::vector<double>{0.5, 0.5, 0.5}));
  EXPECT_TRUE(config.data.skip_bad_images);
  EXPECT_DOUBLE_EQ(config.solver.base_lr, 1e-3);
  EXPECT_EQ(config.solver.milestones, (std::vector<int>{10, 20}));
  EXPECT_EQ(config.seed, 3);
  EXPECT_EQ(config.model.pooling, "avg") << "unset keys keep their defaults";
}

TEST(ConfigLoader, ASingleValueIsAOneElementList) {
  const Config config = parse_config("data: {sources: dukemtmcreid}");
  EXPECT_EQ(config.data.sources, std::vector<std::string>{"dukemtmcreid"});
}

TEST(ConfigLoader, BaseFilesDeepMergeWithPathsRelativeToTheIncludingFile) {
  TempDir dir;
  write_file(dir / "recipes/_base_/common.yaml", R"(
solver: {base_lr: 0.1, max_epochs: 50, milestones: [20, 40]}
data: {height: 128, width: 64}
)");
  write_file(dir / "recipes/_base_/model.yaml", R"(
_base_: common.yaml
model: {name: osnet_x0_25}
solver: {max_epochs: 60}
)");
  write_file(dir / "recipes/child.yaml", R"(
_base_: [_base_/model.yaml]
solver: {milestones: [30]}
data: {width: 96}
)");
  const Config config = load_config((dir / "recipes/child.yaml").string());
  EXPECT_EQ(config.model.name, "osnet_x0_25");
  EXPECT_DOUBLE_EQ(config.solver.base_lr, 0.1) << "kept from the grand-parent";
  EXPECT_EQ(config.solver.max_epochs, 60) << "parent overrides grand-parent";
  EXPECT_EQ(config.solver.milestones, std::vector<int>{30}) << "lists are replaced, not merged";
  EXPECT_EQ(config.data.height, 128);
  EXPECT_EQ(config.data.width, 96);
}

TEST(ConfigLoader, LaterBasesOverrideEarlierOnes) {
  TempDir dir;
  write_file(dir / "a.yaml", "seed: 1\nthreads: 1\n");
  write_file(dir / "b.yaml", "seed: 2\n");
  write_file(dir / "c.yaml", "_base_: [a.yaml, b.yaml]\n");
  const Config config = load_config((dir / "c.yaml").string());
  EXPECT_EQ(config.seed, 2);
  EXPECT_EQ(config.threads, 1);
}

TEST(ConfigLoader, OverridesAreParsedAsYamlAndAppliedInOrder) {
  const Config config = load_config(
      "", {"solver.base_lr=0.1", "data.sources=[a, b]", "model.neck=bnneck", "seed=5", "seed=6",
           "model.pretrained="});
  EXPECT_DOUBLE_EQ(config.solver.base_lr, 0.1);
  EXPECT_EQ(config.data.sources, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(config.model.neck, "bnneck");
  EXPECT_EQ(config.seed, 6);
  EXPECT_EQ(config.model.pretrained, "");
}

TEST(ConfigLoader, OverrideWinsOverFileAndBases) {
  TempDir dir;
  write_file(dir / "base.yaml", "solver: {base_lr: 0.5}\n");
  write_file(dir / "c.yaml", "_base_: base.yaml\nsolver: {base_lr: 0.25}\n");
  const Config config = load_config((dir / "c.yaml").string(), {"solver.base_lr=0.125"});
  EXPECT_DOUBLE_EQ(config.solver.base_lr, 0.125);
}

TEST(ConfigLoader, UnknownKeyNamesItsPathAndTheNearestKey) {
  const std::string message = expect_error<ConfigError>(
      [] { load_config("", {"solver.bsae_lr=1"}); }, {"solver.bsae_lr", "solver.base_lr"});
  EXPECT_EQ(message, "solver.bsae_lr: unknown key (did you mean 'solver.base_lr'?)");
  expect_error<ConfigError>([] { parse_config("modle: {name: x}"); }, {"modle", "'model'"});
  expect_error<ConfigError>([] { parse_config("data: {cuhk03: {labled: true}}"); },
                            {"data.cuhk03.labled", "data.cuhk03.labeled"});
  // Nothing close: list the valid keys of that section instead.
  expect_error<ConfigError>([] { parse_config("sampler: {zzzzzzzzzz: 1}"); },
                            {"sampler.zzzzzzzzzz: unknown key", "valid keys under sampler",
                             "num_instances"});
}

TEST(ConfigLoader, WrongTypeNamesTheKeyAndTheExpectedType) {
  EXPECT_EQ(expect_error<ConfigError>([] { parse_config("solver: {base_lr: fast}"); }, {}),
            "solver.base_lr: expected a number (got 'fast')");
  EXPECT_EQ(expect_error<ConfigError>([] { parse_config("data: {height: 1.5}"); }, {}),
            "data.height: expected an integer (got '1.5')");
  EXPECT_EQ(expect_error<ConfigError>([] { parse_config("solver: {amp: maybe}"); }, {}),
            "solver.amp: expected a boolean (got 'maybe')");
  EXPECT_EQ(expect_error<ConfigError>([] { parse_config("solver: {milestones: {a: 1}}"); }, {}),
            "solver.milestones: expected a list of integers (got a mapping)");
  EXPECT_EQ(expect_error<ConfigError>([] { parse_config("solver: {milestones: [10, x]}"); }, {}),
            "solver.milestones[1]: expected an integer (got 'x')");
  EXPECT_EQ(expect_error<ConfigError>([] { parse_config("solver: 3"); }, {}),
            "solver: expected a mapping (got '3')");
  EXPECT_EQ(expect_error<ConfigError>([] { parse_config("model: {name: [a]}"); }, {}),
            "model.name: expected a string (got a list)");
}

TEST(ConfigLoader, MalformedYamlNamesFileAndLine) {
  TempDir dir;
  const auto file = dir / "bad.yaml";
  write_file(file, "model:\n  name: osnet\n  neck: [bnneck\n");
  expect_error<ConfigError>([&] { load_config(file.string()); },
                            {file.string() + ":", "malformed YAML"});
  write_file(file, "- just\n- a list\n");
  expect_error<ConfigError>([&] { load_config(file.string()); },
                            {file.string(), "must be a YAML mapping"});
}

TEST(ConfigLoader, MissingFileAndMissingBaseNameTheFiles) {
  TempDir dir;
  expect_error<IOError>([&] { load_config((dir / "none.yaml").string()); },
                        {"none.yaml", "config file not found"});
  write_file(dir / "child.yaml", "_base_: ../gone/base.yaml\n");
  expect_error<IOError>([&] { load_config((dir / "child.yaml").string()); },
                        {"gone/base.yaml", "not found", "_base_ of", "child.yaml"});
}

TEST(ConfigLoader, BaseCycleIsReported) {
  TempDir dir;
  write_file(dir / "a.yaml", "_base_: b.yaml\n");
  write_file(dir / "b.yaml", "_base_: a.yaml\n");
  expect_error<ConfigError>([&] { load_config((dir / "a.yaml").string()); },
                            {"_base_ cycle", "a.yaml -> ", "b.yaml -> "});
  write_file(dir / "self.yaml", "_base_: self.yaml\n");
  expect_error<ConfigError>([&] { load_config((dir / "self.yaml").string()); }, {"_base_ cycle"});
}

TEST(ConfigLoader, BadOverrideSyntax) {
  expect_error<ConfigError>([] { load_config("", {"solver.base_lr"}); }, {"expected key=value"});
  expect_error<ConfigError>([] { load_config("", {"solver..base_lr=1"}); }, {"empty key component"});
  expect_error<ConfigError>([] { load_config("", {"data.sources=[a, b"}); },
                            {"data.sources", "not valid YAML"});
}

TEST(ConfigValidate, CrossFieldRulesNameTheKey) {
  EXPECT_EQ(expect_error<ConfigError>([] { load_config("", {"model.pooling=gam"}); }, {}),
            "model.pooling: 'gam' is not one of avg, gem, max (did you mean 'gem'?)");  // the pooling registry's names
  expect_error<ConfigError>(
      [] { load_config("", {"sampler.name=identity", "data.batch_size=30"}); },
      {"data.batch_size", "multiple of sampler.num_instances"});
  expect_error<ConfigError>([] { load_config("", {"loss.names=[ce, triplet]"}); },
                            {"loss.names", "sampler.name"});
  expect_error<ConfigError>(
      [] { load_config("", {"data.transforms=[random_erasing, random_flip]"}); },
      {"data.transforms[0]", "must be the last"});
  expect_error<ConfigError>([] { load_config("", {"solver.milestones=[40, 20]"}); },
                            {"solver.milestones[1]", "increasing"});
  expect_error<ConfigError>([] { load_config("", {"test.ranks=[1, 100]"}); },
                            {"test.ranks[1]", "max_rank"});
  expect_error<ConfigError>([] { load_config("", {"device=gpu"}); }, {"device", "'gpu'"});
  expect_error<ConfigError>([] { load_config("", {"solver.base_lr=-1"}); },
                            {"solver.base_lr", "must be > 0"});
  expect_error<ConfigError>([] { load_config("", {"data.mean=[0.5, 0.5]"}); },
                            {"data.mean", "3 values"});
}

TEST(ConfigLoader, YamlRoundTripIsExact) {
  const Config config = load_config(
      "", {"solver.base_lr=0.00035", "data.sources=[market1501, msmt17]", "model.gem_p=3",
           "output_dir='out dir/with: colon'", "test.weights=", "data.erasing.value=[0.1, 0.2, 1e-7]"});
  const std::string yaml = to_yaml(config);
  EXPECT_NE(yaml.find("base_lr: 0.00035\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("gem_p: 3.0\n"), std::string::npos) << yaml;
  const Config again = parse_config(yaml);
  EXPECT_EQ(to_yaml(again), yaml);
  EXPECT_EQ(again.output_dir, "out dir/with: colon");
  EXPECT_EQ(again.data.erasing.value[2], 1e-7);
}

TEST(ConfigLoader, ATermOfTheProgramsHasItsOwnBlock) {
  // A term the program registers reads loss.<term>; the config keeps the block as written and
  // writes it back unchanged.
  const Config config = load_config("", {"sampler.name=identity", "loss.names=[ce, contrastive]",
                                         "loss.contrastive.margin=0.5", "loss.contrastive.mode=hard",
                                         "loss.contrastive.weight=2", "loss.contrastive.label=''"});
  const auto& block = config.loss.terms.blocks.at("contrastive");
  EXPECT_EQ(block, (std::map<std::string, std::string>{{"label", ""}, {"margin", "0.5"}, {"mode", "hard"}, {"weight", "2"}}));
  const std::string yaml = to_yaml(config);
  const Config again = parse_config(yaml);
  EXPECT_EQ(again.loss.terms.blocks, config.loss.terms.blocks) << yaml;
  EXPECT_EQ(to_yaml(again), yaml);
  // A changed option is a difference of the two configs, under its own path.
  const auto diff = diff_configs(config, load_config("", {"sampler.name=identity", "loss.names=[ce, contrastive]",
                                                          "loss.contrastive.margin=0.7"}));
  std::vector<std::string> paths;
  for (const auto& d : diff) paths.push_back(d.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"loss.contrastive.label", "loss.contrastive.margin", "loss.contrastive.mode",
                                             "loss.contrastive.weight"}));
  EXPECT_EQ(diff[1].before, "0.5");
  EXPECT_EQ(diff[1].after, "0.7");
  EXPECT_EQ(diff[0].after, "(not set)");
  // An empty block is a block (the term's defaults), as an empty section is.
  EXPECT_TRUE(parse_config("loss: {names: [ce, mine], mine: }").loss.terms.blocks.at("mine").empty());
  // Blocks are not keys of the schema.
  for (const auto& key : list_keys()) EXPECT_EQ(key.path.find("contrastive"), std::string::npos) << key.path;
}

TEST(ConfigLoader, ATermBlockThatNoTermUsesIsAnError) {
  // A misspelt built-in section, with the section it meant.
  EXPECT_EQ(expect_error<ConfigError>([] { parse_config("loss: {tripelt: {margin: 0.5}}"); }, {}),
            "loss.tripelt: unknown key: not a term in loss.names (ce) (did you mean 'loss.triplet'?)");
  // A term left out of loss.names.
  expect_error<ConfigError>([] { load_config("", {"loss.contrastive.margin=0.5"}); },
                            {"loss.contrastive", "not a term in loss.names (ce)", "add the term to loss.names"});
  // A block holds scalars: a nested value names its key.
  EXPECT_EQ(expect_error<ConfigError>(
                [] { load_config("", {"loss.names=[ce, mine]", "loss.mine.inputs=[a, b]"}); }, {}),
            "loss.mine.inputs: expected a number, boolean or string (got a list)");
  expect_error<ConfigError>([] { parse_config("loss: {names: [ce, mine], mine: 3}"); }, {"loss.mine: unknown key"});
  // Only the loss section has blocks of its own.
  expect_error<ConfigError>([] { parse_config("solver: {mine: {a: 1}}"); }, {"solver.mine: unknown key"});
}

TEST(ConfigLoader, SaveConfigWritesTheResolvedYaml) {
  TempDir dir;
  const Config config = load_config("", {"seed=42"});
  const auto path = dir / "run/config.yaml";
  save_config(config, path.string());
  EXPECT_EQ(load_config(path.string()).seed, 42);
  EXPECT_EQ(std::distance(test::fs::directory_iterator(path.parent_path()), test::fs::directory_iterator()), 1);
}

TEST(ConfigLoader, ListsEveryLeafKeyWithTypeAndDefault) {
  const auto keys = list_keys();
  auto find = [&](const std::string& path) -> const KeyInfo* {
    for (const auto& k : keys)
      if (k.path == path) return &k;
    return nullptr;
  };
  ASSERT_NE(find("solver.base_lr"), nullptr);
  EXPECT_EQ(find("solver.base_lr")->type, "number");
  EXPECT_EQ(find("solver.base_lr")->default_value, "0.00035");
  ASSERT_NE(find("data.sources"), nullptr);
  EXPECT_EQ(find("data.sources")->type, "list of strings");
  EXPECT_EQ(find("data.sources")->default_value, "[market1501]");
  EXPECT_EQ(find("data.cuhk03"), nullptr) << "sections are not leaf keys";
  EXPECT_NE(find("data.cuhk03.labeled"), nullptr);
}

TEST(ConfigLoader, EveryShippedConfigLoadsAndValidates) {
  int count = 0;
  for (const auto& entry : test::fs::recursive_directory_iterator(test::source_dir() / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(load_config(entry.path().string()));
    ++count;
  }
  EXPECT_GT(count, 0);
}

}  // namespace
}  // namespace reid::config
