#include "reid/engine/checkpoint.h"

#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/files.h"

namespace reid::engine {
namespace {

const char* kFormat = "libreid-checkpoint-v1";

void write_int(torch::serialize::OutputArchive& archive, const std::string& key, int64_t value) {
  archive.write(key, torch::tensor({value}, torch::kLong));
}

int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  return t.item<int64_t>();
}

}  // namespace

void save_checkpoint(const std::string& path, const TrainingState& state, const Trainables& objects) {
  TORCH_CHECK(objects.model && objects.optimizer, "a checkpoint needs the model and the optimizer");
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kFormat)));
  write_int(archive, "epoch", state.epoch);
  write_int(archive, "iteration", state.iteration);
  write_int(archive, "sampler_seed", static_cast<int64_t>(state.sampler.seed));
  write_int(archive, "sampler_epoch", state.sampler.epoch);
  write_int(archive, "sampler_position", state.sampler.position);
  archive.write("best_metric", torch::tensor({state.best_metric}, torch::kDouble));
  write_int(archive, "best_epoch", state.best_epoch);
  archive.write("train_seconds", torch::tensor({state.train_seconds}, torch::kDouble));
  write_int(archive, "images", state.images);
  archive.write("config", c10::IValue(state.config_yaml));
  archive.write("cpu_rng", at::detail::getDefaultCPUGenerator().get_state());
  auto sub = [&](const char* key, const std::function<void(torch::serialize::OutputArchive&)>& fill) {
    torch::serialize::OutputArchive child;
    fill(child);
    archive.write(key, child);
  };
  sub("model", [&](auto& a) { objects.model->save(a); });
  sub("optimizer", [&](auto& a) { objects.optimizer->save(a); });
  if (objects.loss) sub("loss", [&](auto& a) { objects.loss->save(a); });
  if (objects.center_optimizer) sub("center_optimizer", [&](auto& a) { objects.center_optimizer->save(a); });

  utils::write_atomically(path, "the checkpoint", [&](const std::string& temporary) {
    try {
      archive.save_to(temporary);
    } catch (const c10::Error& e) {
      throw IOError(temporary, std::string("cannot write the checkpoint: ") + e.what_without_backtrace());
    }
  });
}

TrainingState load_checkpoint(const std::string& path, const Trainables& objects) {
  if (!std::filesystem::is_regular_file(path)) throw IOError(path, "checkpoint not found");
  TrainingState state;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    c10::IValue format;
    if (!archive.try_read("format", format) || !format.isString() || format.toStringRef() != kFormat)
      throw IOError(path, "not a LibReID checkpoint");
    state.epoch = read_int(archive, "epoch");
    state.iteration = read_int(archive, "iteration");
    state.sampler.seed = static_cast<uint64_t>(read_int(archive, "sampler_seed"));
    state.sampler.epoch = read_int(archive, "sampler_epoch");
    state.sampler.position = read_int(archive, "sampler_position");
    torch::Tensor best;
    archive.read("best_metric", best);
    state.best_metric = best.item<double>();
    state.best_epoch = read_int(archive, "best_epoch");
    // Absent from checkpoints written before they were recorded: count from zero then.
    c10::IValue seconds, images;
    if (archive.try_read("train_seconds", seconds) && seconds.isTensor()) state.train_seconds = seconds.toTensor().item<double>();
    if (archive.try_read("images", images) && images.isTensor()) state.images = images.toTensor().item<int64_t>();
    c10::IValue config;
    archive.read("config", config);
    state.config_yaml = config.toStringRef();
    torch::Tensor rng;
    archive.read("cpu_rng", rng);
    auto sub = [&](const char* key, const std::function<void(torch::serialize::InputArchive&)>& use) {
      torch::serialize::InputArchive child;
      if (!archive.try_read(key, child)) throw IOError(path, std::string("the checkpoint has no ") + key);
      use(child);
    };
    sub("model", [&](auto& a) { objects.model->load(a); });
    sub("optimizer", [&](auto& a) { objects.optimizer->load(a); });
    if (objects.loss) sub("loss", [&](auto& a) { objects.loss->load(a); });
    if (objects.center_optimizer) sub("center_optimizer", [&](auto& a) { objects.center_optimizer->load(a); });
    auto generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(rng);
  } catch (const IOError&) {
    throw;
  } catch (const c10::Error& e) {
    throw IOError(path, std::string("cannot read the checkpoint (corrupt, or made for another model or "
                                    "optimizer): ") + e.what_without_backtrace());
  }
  return state;
}

}  // namespace reid::engine
