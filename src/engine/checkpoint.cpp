#include "reid/engine/checkpoint.h"

#include <filesystem>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/io/torch_file.h"
#include "reid/utils/files.h"
#include "reid/utils/strings.h"

namespace reid::engine {
namespace {

// v1 keys are kept (older checkpoints load); per-rank states and the world size are optional.
const char* kFormat = "libreid-checkpoint-v1";

void write_int(torch::serialize::OutputArchive& archive, const std::string& key, int64_t value) {
  archive.write(key, torch::tensor({value}, torch::kLong));
}

int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  return t.item<int64_t>();
}

void write_state(torch::serialize::OutputArchive& archive, const TrainingState& state) {
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
  write_int(archive, "world_size", state.world_size);
  write_int(archive, "num_classes", state.num_classes);
  write_int(archive, "num_images", state.num_images);
  archive.write("config", c10::IValue(state.config_yaml));
}

TrainingState read_state(torch::serialize::InputArchive& archive, const std::string& path) {
  c10::IValue format;
  if (!archive.try_read("format", format) || !format.isString() || format.toStringRef() != kFormat)
    throw IOError(path, "not a LibReID checkpoint");
  TrainingState state;
  state.epoch = read_int(archive, "epoch");
  state.iteration = read_int(archive, "iteration");
  state.sampler.seed = static_cast<uint64_t>(read_int(archive, "sampler_seed"));
  state.sampler.epoch = read_int(archive, "sampler_epoch");
  state.sampler.position = read_int(archive, "sampler_position");
  torch::Tensor best;
  archive.read("best_metric", best);
  state.best_metric = best.item<double>();
  state.best_epoch = read_int(archive, "best_epoch");
  // Absent from checkpoints written before they were recorded.
  c10::IValue value;
  if (archive.try_read("train_seconds", value) && value.isTensor()) state.train_seconds = value.toTensor().item<double>();
  if (archive.try_read("images", value) && value.isTensor()) state.images = value.toTensor().item<int64_t>();
  if (archive.try_read("world_size", value) && value.isTensor()) state.world_size = value.toTensor().item<int64_t>();
  if (archive.try_read("num_classes", value) && value.isTensor()) state.num_classes = value.toTensor().item<int64_t>();
  if (archive.try_read("num_images", value) && value.isTensor()) state.num_images = value.toTensor().item<int64_t>();
  c10::IValue config;
  archive.read("config", config);
  state.config_yaml = config.toStringRef();
  return state;
}

// Reads the file whole and checks every record's CRC-32 before LibTorch parses it: a damaged
// checkpoint is refused by name instead of being resumed from.
template <class F>
auto guarded_read(const std::string& path, F&& body) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw IOError(path, "checkpoint not found");
  const std::string bytes = io::read_checked_archive(path);
  try {
    std::istringstream stream(bytes);
    return body(stream);
  } catch (const IOError&) {
    throw;
  } catch (const c10::Error& e) {
    throw IOError(path, std::string("cannot read the checkpoint (corrupt, or made for another model or "
                                    "optimizer): ") + e.what_without_backtrace());
  }
}

std::string describe(const torch::Tensor& t) {
  std::string text = std::string(c10::toString(t.scalar_type())) + " [";
  for (int64_t i = 0; i < t.dim(); ++i) text += (i ? ", " : "") + std::to_string(t.size(i));
  return text + "]";
}

// Reads the tensors Module::save wrote for `module` (its own parameters and buffers, then each
// child in a nested archive) and checks each against the module's before anything is copied:
// LibTorch's Module::load would silently take a tensor of another shape and fail later, deep in
// a convolution. Throws reid::Error naming the first tensor that is missing or differs.
void read_module(torch::nn::Module& module, torch::serialize::InputArchive& archive, const std::string& prefix,
                 std::vector<std::pair<torch::Tensor, torch::Tensor>>& copies) {
  auto take = [&](const std::string& key, const torch::Tensor& target, bool is_buffer) {
    torch::Tensor stored;
    if (!archive.try_read(key, stored, is_buffer))
      throw Error("it has no tensor " + prefix + key + ", which the model has: it was written for another model");
    if (stored.sizes() != target.sizes() || stored.scalar_type() != target.scalar_type())
      throw Error("tensor " + prefix + key + " is " + describe(stored) + " there but " + describe(target) +
                  " in the model: it was written for another model or configuration");
    copies.emplace_back(target, stored);
  };
  for (const auto& p : module.named_parameters(/*recurse=*/false)) take(p.key(), p.value(), false);
  for (const auto& b : module.named_buffers(/*recurse=*/false)) take(b.key(), b.value(), true);
  for (const auto& child : module.named_children()) {
    if (!child.value()->is_serializable()) continue;
    torch::serialize::InputArchive nested;
    if (!archive.try_read(child.key(), nested))
      throw Error("it has no " + prefix + child.key() + ", which the model has: it was written for another model");
    read_module(*child.value(), nested, prefix + child.key() + ".", copies);
  }
}

void load_module_checked(torch::nn::Module& module, torch::serialize::InputArchive& archive) {
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  read_module(module, archive, "", copies);
  torch::NoGradGuard no_grad;
  for (auto& copy : copies) copy.first.copy_(copy.second);
}

}  // namespace

void Checkpointer::add(const std::string& name, torch::nn::Module& module) {
  for (const auto& e : entries_) TORCH_CHECK(e.name != name, "checkpoint entry '", name, "' is registered twice");
  entries_.push_back(
      {name, [&module](auto& a) { module.save(a); }, [&module](auto& a) { load_module_checked(module, a); }});
}

void Checkpointer::add(const std::string& name, torch::optim::Optimizer& optimizer) {
  for (const auto& e : entries_) TORCH_CHECK(e.name != name, "checkpoint entry '", name, "' is registered twice");
  entries_.push_back({name, [&optimizer](auto& a) { optimizer.save(a); }, [&optimizer](auto& a) { optimizer.load(a); }});
}

std::vector<std::string> Checkpointer::names() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.name);
  return out;
}

void Checkpointer::save(const std::string& path, const TrainingState& state, const std::vector<RankState>& ranks) const {
  torch::serialize::OutputArchive archive;
  write_state(archive, state);
  archive.write("cpu_rng", at::detail::getDefaultCPUGenerator().get_state());
  for (const auto& e : entries_) {
    torch::serialize::OutputArchive child;
    e.save(child);
    archive.write(e.name, child);
  }
  for (std::size_t r = 0; r < ranks.size(); ++r) {
    torch::serialize::OutputArchive child;
    child.write("rng", ranks[r].rng);
    // Buffer names hold dots, which archive keys cannot: names in one string, tensors by index.
    std::string names;
    int64_t index = 0;
    for (const auto& b : ranks[r].buffers) {
      names += b.first + "\n";
      child.write("buffer" + std::to_string(index++), b.second, /*is_buffer=*/true);
    }
    child.write("buffer_names", c10::IValue(names));
    archive.write("rank" + std::to_string(r), child);
  }
  // Serialised in memory first: LibTorch's file writer finishes the archive in a destructor,
  // where a write error (a full disk) cannot be reported and ends the process.
  std::string bytes;
  archive.save_to([&bytes](const void* data, size_t size) {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  utils::write_file_atomically(path, bytes, "the checkpoint");
}

TrainingState Checkpointer::load(const std::string& path, std::vector<RankState>* ranks) const {
  return guarded_read(path, [&](std::istream& stream) {
    torch::serialize::InputArchive archive;
    archive.load_from(stream);
    TrainingState state = read_state(archive, path);
    torch::Tensor rng;
    archive.read("cpu_rng", rng);
    for (const auto& e : entries_) {
      torch::serialize::InputArchive child;
      if (!archive.try_read(e.name, child)) throw IOError(path, "the checkpoint has no " + e.name);
      try {
        e.load(child);
      } catch (const IOError&) {
        throw;
      } catch (const Error& error) {
        throw IOError(path, "cannot resume from this checkpoint's " + e.name + ": " + error.what());
      }
    }
    if (ranks) {
      ranks->clear();
      for (int64_t r = 0; r < state.world_size && state.world_size > 1; ++r) {
        torch::serialize::InputArchive child;
        if (!archive.try_read("rank" + std::to_string(r), child)) break;
        RankState rank;
        child.read("rng", rank.rng);
        c10::IValue names;
        if (child.try_read("buffer_names", names) && names.isString()) {
          int64_t index = 0;
          for (const auto& name : utils::split(names.toStringRef(), '\n')) {
            if (name.empty()) continue;
            torch::Tensor t;
            child.read("buffer" + std::to_string(index++), t, /*is_buffer=*/true);
            rank.buffers[name] = t;
          }
        }
        ranks->push_back(std::move(rank));
      }
    }
    auto generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(rng);
    return state;
  });
}

TrainingState read_training_state(const std::string& path) {
  return guarded_read(path, [&](std::istream& stream) {
    torch::serialize::InputArchive archive;
    archive.load_from(stream);
    return read_state(archive, path);
  });
}

}  // namespace reid::engine
