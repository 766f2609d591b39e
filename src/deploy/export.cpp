#include "reid/deploy/export.h"

#include <filesystem>
#include <sstream>

#include "reid/config/options.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/version.h"
#include "reid/deploy/model.h"
#include "reid/deploy/onnx.h"

namespace reid::deploy {
namespace {

template <class T>
std::string joined(const T& values) {
  std::ostringstream out;
  out.precision(7);  // a float's digits: 0.485f is written 0.485
  for (std::size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  return out.str();
}

// True when `a` and `b` name the same file: the same path once resolved, or (both existing)
// links to one file.
bool same_file(const std::string& a, const std::string& b) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto ca = fs::weakly_canonical(a, ec);
  if (ec) return false;
  const auto cb = fs::weakly_canonical(b, ec);
  if (ec) return false;
  if (ca == cb) return true;
  return fs::exists(a, ec) && fs::exists(b, ec) && fs::equivalent(a, b, ec);
}

// One file per output, and no output over the weights it is made from.
void check_output_paths(const std::string& weights, const ExportOptions& options) {
  if (!options.onnx.empty() && !options.torchscript.empty() && same_file(options.onnx, options.torchscript))
    throw Error("the ONNX and the TorchScript output are the same file (" + options.onnx +
                "): give each its own path");
  for (const auto& [kind, path] : {std::pair<std::string, std::string>{"ONNX", options.onnx}, {"TorchScript", options.torchscript}})
    if (!path.empty() && same_file(path, weights))
      throw Error("the " + kind + " output " + path + " is the weights file being exported: writing it would destroy "
                  "the weights; give another path");
}

}  // namespace

models::ReidModel load_for_tracing(const Config& config, const std::string& weights,
                                   const models::ModelRegistry& models) {
  Config cpu = config;
  cpu.device = "cpu";
  cpu.solver.channels_last = false;
  cpu.solver.precision = "float32";
  return load_model_for_inference(cpu, weights, models);
}

std::map<std::string, std::string> preprocessing_metadata(const Config& config, int64_t feature_dim) {
  const auto transform = config::transform_options(config, /*train=*/false);
  return {
      {"reid.model", config.model.name},
      {"reid.libreid_version", version()},
      {"reid.input", "images: float32 [N, 3, " + std::to_string(transform.height) + ", " +
                         std::to_string(transform.width) + "], NCHW, RGB channel order"},
      {"reid.height", std::to_string(transform.height)},
      {"reid.width", std::to_string(transform.width)},
      {"reid.resize", "bilinear (OpenCV INTER_LINEAR) to height x width, no aspect-ratio padding"},
      {"reid.pixel_scale", "1/255"},
      {"reid.mean", joined(transform.mean)},
      {"reid.std", joined(transform.std)},
      {"reid.normalization", "x = (pixel / 255 - mean[c]) / std[c], c in R, G, B"},
      {"reid.output", "features: float32 [N, " + std::to_string(feature_dim) +
                          "], not L2-normalised (normalise them for cosine similarity)"},
      {"reid.feature_dim", std::to_string(feature_dim)},
      {"reid.test_flip", config.test.flip ? "the evaluation averaged each image with its mirror image" : "no"},
  };
}

TracedModel export_model(const Config& config, const std::string& weights, const ExportOptions& options,
                         const models::ModelRegistry& models) {
  if (options.onnx.empty() && options.torchscript.empty()) throw Error("nothing to export: give an ONNX or TorchScript path");
  check_output_paths(weights, options);
  auto model = load_for_tracing(config, weights, models);
  const auto transform = config::transform_options(config, /*train=*/false);
  TraceOptions trace;
  trace.height = transform.height;
  trace.width = transform.width;
  trace.fold_batchnorm = options.fold_batchnorm;
  auto traced = trace_model(*model, trace);
  auto metadata = preprocessing_metadata(config, traced.feature_dim);
  metadata["reid.weights"] = std::filesystem::path(weights).filename().string();
  if (!options.onnx.empty()) {
    OnnxOptions onnx;
    onnx.opset = options.opset;
    onnx.metadata = metadata;
    export_onnx(traced, options.onnx, onnx);
    logger().info("ONNX (opset {}) written to {}", options.opset, options.onnx);
  }
  if (!options.torchscript.empty()) {
    save_torchscript(traced, options.torchscript, metadata);
    logger().info("TorchScript written to {}", options.torchscript);
  }
  return traced;
}

}  // namespace reid::deploy
