// A run built from a YAML config, extended by the program: it registers a training sampler of its
// own (named in the YAML as `sampler.name: multi_camera`) and adds a hook to the run. Everything
// else (data, model, losses, evaluation, checkpoints, resume) is the library's.
//
//   custom_sampler CONFIG [key=value ...]        e.g. custom_sampler experiment.yaml solver.max_epochs=2
//
// The sampler: P x K batches whose K images of an identity come from at least two cameras, so
// that every triplet has a cross-camera positive; identities seen by one camera only are left
// out. The hook: writes <output_dir>/batches.csv (epoch, batches, the smallest number of cameras
// any identity of a batch was drawn from) and checks the sampler's promise as training runs.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include <reid/app/train.h>
#include <reid/config/loader.h>
#include <reid/data/sampler.h>
#include <reid/engine/hooks.h>

namespace {

class MultiCameraSampler : public reid::data::Sampler {
 public:
  MultiCameraSampler(reid::data::RecordList records, const reid::data::SamplerOptions& options)
      : Sampler(options.seed), records_(std::move(records)), batch_size_(options.batch_size), k_(options.num_instances) {
    if (k_ < 2 || batch_size_ % k_ != 0)
      throw reid::ConfigError("sampler.num_instances", "the multi_camera sampler needs K >= 2 dividing the batch");
    std::map<int64_t, std::map<int64_t, std::vector<int64_t>>> by_pid;  // pid -> camid -> records
    for (int64_t i = 0; i < static_cast<int64_t>(records_->size()); ++i)
      by_pid[(*records_)[i].pid][(*records_)[i].camid].push_back(i);
    for (auto& [pid, cameras] : by_pid)
      if (cameras.size() >= 2) {
        std::vector<std::vector<int64_t>> lists;
        for (auto& [camid, indices] : cameras) lists.push_back(std::move(indices));
        identities_.push_back(std::move(lists));
      }
    if (static_cast<int64_t>(identities_.size()) < batch_size_ / k_)
      throw reid::ConfigError("sampler.name", "multi_camera: only " + std::to_string(identities_.size()) +
                                                  " identities were seen by two cameras or more; a batch needs " +
                                                  std::to_string(batch_size_ / k_));
  }

  // Each identity once per epoch, in an order drawn from (seed, epoch); its K images go round its
  // cameras (a random image of each in turn), so at least two cameras are always in.
  std::vector<std::vector<int64_t>> plan(int64_t epoch) const override {
    std::mt19937_64 random(state().seed * 1000003u + static_cast<uint64_t>(epoch));
    std::vector<std::size_t> order(identities_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), random);
    std::vector<std::vector<int64_t>> batches;
    const std::size_t p = static_cast<std::size_t>(batch_size_ / k_);
    for (std::size_t start = 0; start + p <= order.size(); start += p) {
      std::vector<int64_t> batch;
      for (std::size_t i = start; i < start + p; ++i) {
        const auto& cameras = identities_[order[i]];
        const std::size_t first = random() % cameras.size();
        for (int64_t j = 0; j < k_; ++j) {
          const auto& images = cameras[(first + static_cast<std::size_t>(j)) % cameras.size()];
          batch.push_back(images[random() % images.size()]);
        }
      }
      batches.push_back(std::move(batch));
    }
    return batches;
  }
  int64_t batch_size() const override { return batch_size_; }
  int64_t group_size() const override { return k_; }

 private:
  reid::data::RecordList records_;
  int64_t batch_size_, k_;
  std::vector<std::vector<std::vector<int64_t>>> identities_;  // identity -> camera -> record indices
};

// After each epoch: the epoch's batches as the sampler planned them, each identity's cameras
// counted from the training records, one line per epoch (main rank only).
class BatchAuditHook : public reid::engine::TrainHook {
 public:
  explicit BatchAuditHook(std::string path) : path_(std::move(path)) {}

  void before_train(reid::engine::Trainer& trainer) override {
    if (trainer.dist().is_main()) std::ofstream(path_) << "epoch,batches,min_cameras_per_identity\n";
  }
  void after_epoch(reid::engine::Trainer& trainer) override {
    if (!trainer.dist().is_main()) return;
    const auto& records = *trainer.records();
    const auto batches = trainer.sampler().plan(trainer.epoch());
    const auto k = trainer.sampler().group_size();
    std::size_t fewest = 1000;
    for (const auto& batch : batches)
      for (std::size_t g = 0; g + k <= batch.size(); g += k) {
        std::set<int64_t> cameras;
        for (int64_t j = 0; j < k; ++j) cameras.insert(records[batch[g + j]].camid);
        fewest = std::min(fewest, cameras.size());
      }
    std::ofstream(path_, std::ios::app) << trainer.epoch() + 1 << "," << batches.size() << "," << fewest << "\n";
    if (fewest < 2) throw reid::Error("multi_camera sampler: an identity of a batch came from one camera only");
  }

 private:
  std::string path_;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) {
      std::cerr << "usage: custom_sampler CONFIG [key=value ...]\n";
      return 2;
    }
    const reid::Config config =
        reid::config::load_config(argv[1], std::vector<std::string>(argv + 2, argv + argc));

    reid::app::TrainSetup setup;
    setup.registries.samplers.add("multi_camera", [](reid::data::RecordList records,
                                                     const reid::data::SamplerOptions& options) {
      return std::unique_ptr<reid::data::Sampler>(new MultiCameraSampler(std::move(records), options));
    });
    setup.hooks.push_back(std::make_shared<BatchAuditHook>(config.output_dir + "/batches.csv"));
    setup.distributed = reid::engine::distributed_options_from_environment();
    const auto result = reid::app::train(config, setup);
    for (const auto& [dataset, r] : result.results)
      std::cout << "multi_camera sampler, " << dataset << ": rank-1 " << 100.0 * r.cmc[0] << "%, mAP "
                << 100.0 * r.mAP << "%\n";
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
}
