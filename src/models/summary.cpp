#include "reid/models/summary.h"

#include <cstdio>

#include <ATen/record_function.h>
#include <torch/torch.h>

namespace reid::models {
namespace {

// The record-function callback is a plain function pointer, so the running total of the
// count_mult_adds() call in progress on this thread lives here.
thread_local int64_t* active_counter = nullptr;

int64_t conv_output(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  return (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

std::unique_ptr<at::ObserverContext> on_operator(const at::RecordFunction& fn) {
  if (!active_counter) return nullptr;
  const std::string name = fn.name();
  const auto inputs = fn.inputs();
  if (name == "aten::conv2d" && inputs.size() >= 7 && inputs[0].isTensor() && inputs[1].isTensor() &&
      inputs[3].isIntList() && inputs[4].isIntList() && inputs[5].isIntList()) {
    const auto& x = inputs[0].toTensor();
    const auto& w = inputs[1].toTensor();
    const auto stride = inputs[3].toIntVector();
    const auto padding = inputs[4].toIntVector();
    const auto dilation = inputs[5].toIntVector();
    const int64_t batch = x.dim() == 4 ? x.size(0) : 1;
    const int64_t h = conv_output(x.size(-2), w.size(2), stride[0], padding[0], dilation[0]);
    const int64_t wd = conv_output(x.size(-1), w.size(3), stride.back(), padding.back(), dilation.back());
    *active_counter += batch * w.size(0) * h * wd * w.size(1) * w.size(2) * w.size(3);
  } else if (name == "aten::linear" && inputs.size() >= 2 && inputs[0].isTensor() &&
             inputs[1].isTensor()) {
    *active_counter += inputs[0].toTensor().numel() * inputs[1].toTensor().size(0);
  }
  return nullptr;
}

std::string millions(int64_t n) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.2fM", static_cast<double>(n) / 1e6);
  return buffer;
}

}  // namespace

std::string ModelSummary::text() const {
  char buffer[160];
  std::snprintf(buffer, sizeof(buffer), "%s parameters (%s without classifier), %.3f G mult-adds at %lldx%lld",
                millions(parameters).c_str(), millions(backbone_parameters).c_str(),
                static_cast<double>(mult_adds) / 1e9, static_cast<long long>(height),
                static_cast<long long>(width));
  return buffer;
}

int64_t count_mult_adds(const std::function<void()>& run) {
  int64_t total = 0;
  int64_t* previous = active_counter;
  active_counter = &total;
  const auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(&on_operator).needsInputs(true).scopes({at::RecordScope::FUNCTION}));
  try {
    at::RecordFunctionGuard enable(true);
    run();
  } catch (...) {
    at::removeCallback(handle);
    active_counter = previous;
    throw;
  }
  at::removeCallback(handle);
  active_counter = previous;
  return total;
}

ModelSummary summarize(ReidModelImpl& model, int64_t height, int64_t width) {
  ModelSummary summary;
  summary.parameters = count_parameters(model);
  summary.backbone_parameters = count_parameters(model, "classifier");
  summary.height = height;
  summary.width = width;
  const bool was_training = model.is_training();
  model.eval();
  auto options = torch::TensorOptions();
  for (const auto& p : model.parameters()) {
    options = options.device(p.device()).dtype(p.scalar_type());
    break;
  }
  const auto input = torch::zeros({1, 3, height, width}, options);
  summary.mult_adds = count_mult_adds([&] {
    torch::NoGradGuard no_grad;
    model.forward(input);
  });
  model.train(was_training);
  return summary;
}

}  // namespace reid::models
