// One registry per kind a config names: unknown names are ConfigErrors on their key with a
// "did you mean", and a program's own sampler, schedule, optimiser and metric are used from the
// YAML like the built-ins, with its own hooks in the run.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/app/train.h"
#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "reid/engine/builders.h"
#include "support.h"

namespace reid::engine {
namespace {

Config tiny(const test::TempDir& dir, const std::vector<std::string>& overrides = {}) {
  const auto path = dir / "tiny.yaml";
  test::write_file(path, std::string(test::kTinyTrainingConfig) + "output_dir: " + (dir / "run").string() + "\n");
  // Two epochs at a constant rate but for the schedule, no warmup, one loader thread.
  std::vector<std::string> all = {"solver.max_epochs=2", "solver.milestones=[]", "solver.warmup_epochs=0",
                                  "data.workers=1"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  return config::load_config(path.string(), all);
}

TEST(Registries, EveryNamedKindIsCheckedOnItsKeyWithADidYouMean) {
  test::TempDir dir;
  const struct {
    const char* override_;
    const char* key;
    const char* suggestion;
  } cases[] = {
      {"sampler.name=identiy", "sampler.name", "identity"},
      {"solver.optimizer=adan", "solver.optimizer", "adam"},
      {"solver.scheduler=cosin", "solver.scheduler", "cosine"},
      {"solver.best_metric=mapp", "solver.best_metric", "map"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.override_);
    const Config config = tiny(dir, {c.override_});  // loading accepts any name: the run's registries decide
    try {
      check_names(config, Registries{}, /*training=*/true);
      ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.key(), c.key);
      EXPECT_NE(std::string(e.what()).find(std::string("did you mean '") + c.suggestion + "'"), std::string::npos)
          << e.what();
    }
    // A test run needs no training kinds.
    EXPECT_NO_THROW(check_names(config, Registries{}, /*training=*/false));
  }
}

// Records what the run asked of it.
class CountingHook : public TrainHook {
 public:
  void before_train(Trainer&) override { ++started; }
  void after_epoch(Trainer& trainer) override {
    lrs.push_back(trainer.lr());
    sampler_batches.push_back(static_cast<int64_t>(trainer.sampler().plan(trainer.epoch()).size()));
  }
  int started = 0;
  std::vector<double> lrs;
  std::vector<int64_t> sampler_batches;
};

TEST(Registries, AProgramsOwnKindsAreUsedFromTheConfigAndItsHooksRun) {
  test::TempDir dir;
  const Config config = tiny(dir, {"sampler.name=two_batches", "solver.scheduler=halving",
                                   "solver.optimizer=plain_sgd", "solver.best_metric=rank2"});
  app::TrainSetup setup;
  int samplers_built = 0, optimizers_built = 0;
  // The identity sampler's first two batches of each epoch.
  class TwoBatches : public data::Sampler {
   public:
    TwoBatches(data::RecordList records, const data::SamplerOptions& o)
        : Sampler(o.seed), inner_(std::move(records), o.batch_size, o.num_instances, o.seed) {}
    std::vector<std::vector<int64_t>> plan(int64_t epoch) const override {
      auto batches = inner_.plan(epoch);
      batches.resize(std::min<std::size_t>(batches.size(), 2));
      return batches;
    }
    int64_t batch_size() const override { return inner_.batch_size(); }
    int64_t group_size() const override { return inner_.group_size(); }

   private:
    data::IdentitySampler inner_;
  };
  setup.registries.samplers.add("two_batches", [&](data::RecordList records, const data::SamplerOptions& o) {
    ++samplers_built;
    return std::unique_ptr<data::Sampler>(new TwoBatches(std::move(records), o));
  });
  setup.registries.schedulers.add("halving", [](const ScheduleOptions&, int epoch) { return std::pow(0.5, epoch); });
  auto sgd = builtin_optimizers().create("sgd");
  setup.registries.optimizers.add("plain_sgd", [&, sgd] {
    ++optimizers_built;
    return sgd;
  });
  setup.registries.metrics.add("rank2", [](const eval::EvalResult& r) { return r.cmc.at(1); });
  auto hook = std::make_shared<CountingHook>();
  setup.hooks.push_back(hook);

  const auto result = app::train(config, setup);
  EXPECT_EQ(samplers_built, 1);
  EXPECT_EQ(optimizers_built, 1);
  EXPECT_EQ(hook->started, 1);
  EXPECT_EQ(hook->sampler_batches, (std::vector<int64_t>{2, 2}));
  ASSERT_EQ(hook->lrs.size(), 2u);
  EXPECT_DOUBLE_EQ(hook->lrs[0], 0.003);
  EXPECT_DOUBLE_EQ(hook->lrs[1], 0.0015);
  EXPECT_EQ(result.epochs, 2);
  // The best model was chosen by the program's metric: the best epoch's rank-2.
  ASSERT_EQ(result.results.count("synthetic"), 1u);
  ASSERT_GT(result.best_epoch, 0);
  if (result.best_epoch == 2) {
    EXPECT_DOUBLE_EQ(result.best_metric, result.results.at("synthetic").cmc.at(1));
  }
  EXPECT_GE(result.best_metric, result.results.at("synthetic").cmc.at(1));
}

}  // namespace
}  // namespace reid::engine
