#include "reid/models/weights.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/io/torch_file.h"
#include "reid/models/model.h"
#include "reid/utils/files.h"
#include "reid/utils/strings.h"

namespace reid::models {
namespace {

std::string shape_text(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

std::string listed(const std::vector<std::string>& items, std::size_t limit = 8) {
  std::vector<std::string> head(items.begin(), items.begin() + std::min(limit, items.size()));
  std::string text = utils::join(head);
  if (items.size() > limit) text += ", ... (" + std::to_string(items.size()) + " in all)";
  return text;
}

bool is_state_dict(const io::PyValue& value) {
  if (!value.is_dict() || value.entries->empty()) return false;
  for (const auto& entry : *value.entries)
    if (!entry.first.is_string() || !entry.second.is_tensor()) return false;
  return true;
}

}  // namespace

StateDict state_dict(const torch::nn::Module& module) {
  StateDict state;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) state[item.key()] = item.value();
  for (const auto& item : module.named_buffers(/*recurse=*/true)) state[item.key()] = item.value();
  return state;
}

StateDict read_state_dict(const std::string& path) {
  const io::PyValue root = io::load_torch_file(path);
  const io::PyValue* dict = &root;
  if (!is_state_dict(root)) {
    dict = nullptr;
    for (const char* key : {"state_dict", "model"}) {
      const io::PyValue* inner = root.find(key);
      if (inner && is_state_dict(*inner)) {
        dict = inner;
        break;
      }
    }
    if (!dict)
      throw IOError(path, "expected a state dict (name -> tensor), or a checkpoint holding one "
                          "under 'state_dict' or 'model'");
  }
  StateDict state;
  for (const auto& entry : *dict->entries) {
    std::string name = entry.first.text;
    if (utils::starts_with(name, "module.")) name = name.substr(7);
    state[name] = entry.second.tensor;
  }
  return state;
}

void write_state_dict(const StateDict& state, const std::string& path) {
  // torch.save's layout (a zip of data.pkl and one record per storage) holding a plain dict of
  // tensors. torch::pickle_save would tag the dict with TorchScript's type (a
  // torch.jit._pickle.restore_type_tag global), which Python's torch.load refuses under its default
  // weights_only=True since PyTorch 2.6; untagged, the file is what model.state_dict() saves as.
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& entry : state) dict.insert(entry.first, entry.second.detach().cpu().contiguous());
  std::vector<char> pickle;
  torch::jit::Pickler pickler([&](const char* data, std::size_t size) { pickle.insert(pickle.end(), data, data + size); },
                              /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
                              /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(dict);
  pickler.stop();
  std::string archive;
  {
    caffe2::serialize::PyTorchStreamWriter zip([&](const void* data, std::size_t size) {
      archive.append(static_cast<const char*>(data), size);
      return size;
    });
    zip.writeRecord("data.pkl", pickle.data(), pickle.size());
    const auto& storages = pickler.tensorData();
    for (std::size_t i = 0; i < storages.size(); ++i) {
      const auto bytes = torch::jit::getWriteableTensorData(storages[i]);
      zip.writeRecord("data/" + std::to_string(i), bytes.data(), bytes.sizeInBytes());
    }
    zip.writeEndOfFile();
  }
  utils::write_file_atomically(path, archive, "the weights");
}

std::string LoadReport::summary() const {
  std::string text = std::to_string(loaded.size()) + " tensors loaded";
  if (!missing.empty()) text += "; missing (left as initialised): " + listed(missing);
  if (!unexpected.empty()) text += "; unexpected (ignored): " + listed(unexpected);
  if (!mismatched.empty()) text += "; shape mismatch (skipped): " + listed(mismatched);
  return text;
}

LoadReport load_state_dict(torch::nn::Module& module, const StateDict& state, bool strict) {
  LoadReport report;
  StateDict target = state_dict(module);
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  for (const auto& entry : target) {
    auto it = state.find(entry.first);
    if (it == state.end()) {
      report.missing.push_back(entry.first);
    } else if (it->second.sizes() != entry.second.sizes()) {
      report.mismatched.push_back(entry.first + ": " + shape_text(it->second) + " vs model " +
                                  shape_text(entry.second));
    } else {
      report.loaded.push_back(entry.first);
      copies.emplace_back(entry.second, it->second);
    }
  }
  for (const auto& entry : state)
    if (!target.count(entry.first)) report.unexpected.push_back(entry.first);
  if (strict && (!report.missing.empty() || !report.unexpected.empty() || !report.mismatched.empty()))
    throw Error("strict weight loading failed: " + report.summary());
  torch::NoGradGuard no_grad;
  for (auto& copy : copies) copy.first.copy_(copy.second);
  return report;
}

LoadReport load_weights(torch::nn::Module& module, const std::string& path, bool strict) {
  LoadReport report;
  try {
    auto state = read_state_dict(path);
    if (const auto* model = dynamic_cast<const ReidModelImpl*>(&module)) model->adapt_state_dict(state);
    // Weights with NaN or infinity would train (or fail) as if nothing were wrong: refuse them
    // before anything is copied, naming the tensors.
    const auto target = state_dict(module);
    std::vector<std::string> bad;
    for (const auto& entry : state)
      if (target.count(entry.first) && entry.second.is_floating_point() && !entry.second.isfinite().all().item<bool>())
        bad.push_back(entry.first);
    if (!bad.empty())
      throw IOError(path, "non-finite values (NaN or infinity) in " + std::to_string(bad.size()) + " tensor(s): " +
                              listed(bad) + "; nothing was loaded");
    report = load_state_dict(module, state, strict);
  } catch (const IOError&) {
    throw;
  } catch (const Error& e) {
    throw IOError(path, e.what());
  }
  const bool clean = report.missing.empty() && report.unexpected.empty() && report.mismatched.empty();
  if (clean)
    logger().info("weights {}: {}", path, report.summary());
  else
    logger().warn("weights {}: {}", path, report.summary());
  return report;
}

void save_weights(const torch::nn::Module& module, const std::string& path) {
  write_state_dict(state_dict(module), path);
}

void check_finite(const torch::nn::Module& module, const std::string& what) {
  std::vector<std::string> bad;
  for (const auto& entry : state_dict(module))
    if (entry.second.is_floating_point() && !entry.second.isfinite().all().item<bool>()) bad.push_back(entry.first);
  if (!bad.empty())
    throw Error(what + " has non-finite values (NaN or infinity) in " + std::to_string(bad.size()) + " tensor(s): " +
                listed(bad) + "; not written (lower the learning rate, or enable solver.grad_clip)");
}

}  // namespace reid::models
