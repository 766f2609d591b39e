#include "reid/deploy/trace.h"

#include <sstream>
#include <vector>

#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/frozen_conv_folding.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/files.h"

namespace reid::deploy {
namespace {

// Parameters must not require gradients while tracing (the tracer refuses to bake such tensors
// into the graph); restored on exit, as is the train/eval mode.
class InferenceState {
 public:
  explicit InferenceState(models::ReidModelImpl& model) : model_(model), training_(model.is_training()) {
    for (auto& p : model.parameters()) {
      requires_grad_.push_back(p.requires_grad());
      p.set_requires_grad(false);
    }
    model.eval();
  }
  ~InferenceState() {
    std::size_t i = 0;
    for (auto& p : model_.parameters()) p.set_requires_grad(requires_grad_[i++]);
    model_.train(training_);
  }
  InferenceState(const InferenceState&) = delete;
  InferenceState& operator=(const InferenceState&) = delete;

 private:
  models::ReidModelImpl& model_;
  bool training_;
  std::vector<bool> requires_grad_;
};

// Replaces every tensor constant by a private copy on `device` in `dtype` (floating tensors
// only), so that the traced graph shares no storage with the model it came from.
void copy_constants(torch::jit::Graph& graph, const torch::Device& device, torch::ScalarType dtype,
                    bool channels_last) {
  std::vector<torch::jit::Node*> constants;
  for (auto* node : graph.nodes())
    if (node->kind() == torch::jit::prim::Constant && node->output()->type()->kind() == c10::TypeKind::TensorType)
      constants.push_back(node);
  for (auto* node : constants) {
    auto t = node->t(torch::jit::attr::value);
    t = t.is_floating_point() ? t.to(device, dtype, /*non_blocking=*/false, /*copy=*/true) : t.to(device).clone();
    if (channels_last && t.dim() == 4) t = t.contiguous(at::MemoryFormat::ChannelsLast);
    torch::jit::WithInsertPoint guard(node);
    auto* replacement = graph.insertConstant(t);
    node->output()->replaceAllUsesWith(replacement);
    node->destroy();
  }
}

torch::jit::Module make_module(const std::shared_ptr<torch::jit::Graph>& graph) {
  torch::jit::Module module(c10::QualifiedName("__torch__.reid.TracedReidModel"));
  auto method_graph = graph->copy();
  method_graph->insertInput(0, "self")->setType(module._ivalue()->type());
  auto cu = module._ivalue()->compilation_unit();
  auto* fn = cu->create_function(c10::QualifiedName(*module.type()->name(), "forward"), method_graph);
  module.type()->addMethod(fn);
  return module;
}

}  // namespace

TracedModel trace_model(models::ReidModelImpl& model, const TraceOptions& options) {
  TORCH_CHECK(options.height > 0 && options.width > 0, "trace size must be positive");
  if (options.dtype != torch::kFloat && options.dtype != torch::kDouble && !options.device.is_cuda())
    throw Error("half-precision inference needs a CUDA device (asked for " +
                std::string(c10::toString(options.dtype)) + " on " + options.device.str() + ")");
  torch::NoGradGuard no_grad;
  InferenceState state(model);
  const auto params = model.parameters();
  TORCH_CHECK(!params.empty(), "the model has no parameters");
  const auto model_device = params.front().device();
  const auto model_dtype = params.front().scalar_type();
  const auto example = torch::rand({2, 3, options.height, options.width},
                                   torch::TensorOptions().device(model_device).dtype(model_dtype));
  std::shared_ptr<torch::jit::Graph> graph;
  try {
    auto traced = torch::jit::tracer::trace(
        {example},
        [&](torch::jit::Stack inputs) -> torch::jit::Stack {
          return {model.forward(inputs.at(0).toTensor()).feature};
        },
        [](const at::Tensor&) { return std::string(); }, /*strict=*/true, /*force_outplace=*/false);
    graph = traced.first->graph;
  } catch (const c10::Error& e) {
    throw Error(std::string("tracing the model failed: ") + e.what_without_backtrace());
  } catch (const std::runtime_error& e) {
    throw Error(std::string("tracing the model failed: ") + e.what());
  }
  torch::jit::Inline(*graph);
  torch::jit::EliminateDeadCode(graph);
  torch::jit::ConstantPropagation(graph);
  if (options.fold_batchnorm) {
    torch::jit::FoldFrozenConvBatchnorm(graph);
    torch::jit::ConstantPropagation(graph);
    torch::jit::EliminateDeadCode(graph);
  }

  // The graph must not have frozen the example's batch size: compare it with the eager model on
  // another batch size (in the model's own type, before the constants are copied and converted).
  {
    auto check_module = make_module(graph);
    const auto x = torch::rand({3, 3, options.height, options.width}, example.options());
    const auto expected = model.forward(x).feature;
    torch::Tensor got;
    try {
      got = check_module.forward({x}).toTensor();
    } catch (const std::exception& e) {
      throw Error(std::string("the traced model does not run on another batch size (its forward pass depends on "
                              "the batch size, e.g. a view built from x.size(0)): ") + e.what());
    }
    const double scale = expected.abs().max().item<double>() + 1e-12;
    if (got.sizes() != expected.sizes() || (got - expected).abs().max().item<double>() / scale > 1e-4)
      throw Error("the traced model gives other features than the model on another batch size: its forward pass "
                  "depends on the batch size or on data, which tracing cannot record");
  }

  copy_constants(*graph, options.device, options.dtype, options.channels_last);
  TracedModel out;
  out.graph = graph;
  out.module = make_module(graph);
  out.feature_dim = model.feature_dim();
  out.height = options.height;
  out.width = options.width;
  return out;
}

void save_torchscript(const TracedModel& traced, const std::string& path,
                      const std::map<std::string, std::string>& metadata) {
  torch::jit::ExtraFilesMap extra;
  for (const auto& [key, value] : metadata) extra["metadata/" + key] = value;
  std::ostringstream bytes;
  try {
    traced.module.save(bytes, extra);
  } catch (const c10::Error& e) {
    throw IOError(path, std::string("cannot serialise the traced model: ") + e.what_without_backtrace());
  }
  utils::write_file_atomically(path, bytes.str(), "the TorchScript model");
}

}  // namespace reid::deploy
