#include "reid/models/resnet.h"

#include <torch/torch.h>

namespace reid::models {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(false));
}

}  // namespace

IBNImpl::IBNImpl(int64_t planes, double ratio) : half_(static_cast<int64_t>(planes * ratio)) {
  TORCH_CHECK(half_ > 0 && half_ < planes, "IBN needs 0 < ratio * planes < planes");
  IN = register_module("IN", torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(half_).affine(true)));
  BN = register_module("BN", BatchNorm2d(planes - half_));
}

torch::Tensor IBNImpl::forward(const torch::Tensor& x) {
  const auto parts = x.split_with_sizes({half_, x.size(1) - half_}, 1);
  return torch::cat({IN->forward(parts[0].contiguous()), BN->forward(parts[1].contiguous())}, 1);
}

BottleneckImpl::BottleneckImpl(int64_t in_planes, int64_t planes, int64_t stride, bool ibn) {
  const int64_t out_planes = planes * kExpansion;
  conv1_ = register_module("conv1", conv(in_planes, planes, 1, 1, 0));
  if (ibn)
    bn1_ = torch::nn::AnyModule(register_module("bn1", IBN(planes)));
  else
    bn1_ = torch::nn::AnyModule(register_module("bn1", BatchNorm2d(planes)));
  conv2_ = register_module("conv2", conv(planes, planes, 3, stride, 1));
  bn2_ = register_module("bn2", BatchNorm2d(planes));
  conv3_ = register_module("conv3", conv(planes, out_planes, 1, 1, 0));
  bn3_ = register_module("bn3", BatchNorm2d(out_planes));
  if (stride != 1 || in_planes != out_planes)
    downsample_ = register_module(
        "downsample",
        torch::nn::Sequential(conv(in_planes, out_planes, 1, stride, 0), BatchNorm2d(out_planes)));
}

torch::Tensor BottleneckImpl::forward(const torch::Tensor& x) {
  auto out = (bn1_.forward(conv1_->forward(x))).relu_();
  out = (bn2_->forward(conv2_->forward(out))).relu_();
  out = bn3_->forward(conv3_->forward(out));
  out = out + (downsample_ ? downsample_->forward(x) : x);
  return out.relu_();
}

NonLocalImpl::NonLocalImpl(int64_t channels, int64_t reduction) : inter_(channels / reduction) {
  TORCH_CHECK(reduction >= 1 && inter_ >= 1, "non-local block: bad reduction ", reduction, " of ", channels);
  auto conv1x1 = [](int64_t in, int64_t out) { return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)); };
  g_ = register_module("g", conv1x1(channels, inter_));
  theta_ = register_module("theta", conv1x1(channels, inter_));
  phi_ = register_module("phi", conv1x1(channels, inter_));
  BatchNorm2d bn(channels);
  w_ = register_module("W", torch::nn::Sequential(conv1x1(inter_, channels), bn));
  torch::NoGradGuard no_grad;
  bn->weight.zero_();
  bn->bias.zero_();
}

torch::Tensor NonLocalImpl::forward(const torch::Tensor& x) {
  // Shapes from the input's spatial size only (never its batch size), so that a traced graph
  // runs at any batch size.
  const int64_t h = x.size(2), w = x.size(3);
  const auto g = g_->forward(x).flatten(2).permute({0, 2, 1});          // [B, N, C']
  const auto theta = theta_->forward(x).flatten(2).permute({0, 2, 1});  // [B, N, C']
  const auto phi = phi_->forward(x).flatten(2);                         // [B, C', N]
  const auto f = torch::matmul(theta, phi) / static_cast<double>(h * w);
  const auto y = torch::matmul(f, g).permute({0, 2, 1}).reshape({-1, inter_, h, w});
  return x + w_->forward(y);
}

torch::nn::Sequential resnet_stage(int64_t& in_planes, int64_t planes, int64_t blocks, int64_t stride, bool ibn) {
  torch::nn::Sequential layer;
  for (int64_t i = 0; i < blocks; ++i) {
    layer->push_back(Bottleneck(in_planes, planes, i == 0 ? stride : 1, ibn));
    in_planes = planes * BottleneckImpl::kExpansion;
  }
  return layer;
}

void init_resnet_weights(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2d>())
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    else if (auto* b = m->as<BatchNorm2d>()) {
      b->weight.fill_(1.0);
      b->bias.zero_();
    }
  }
}

ResNetOptions resnet50_options(bool ibn, const ModelOptions& model, bool non_local) {
  auto o = ResNetOptions().last_stride(model.last_stride()).ibn(ibn).head(model.head());
  if (non_local) o.non_local({0, 2, 3, 0});
  return o;
}

ResNetImpl::ResNetImpl(const ResNetOptions& o, const std::string& name)
    : ReidModelImpl(name), options(o) {
  TORCH_CHECK(o.layers().size() == 4, "ResNet needs 4 stage depths");
  TORCH_CHECK(o.last_stride() == 1 || o.last_stride() == 2, "last_stride must be 1 or 2 (got ",
              o.last_stride(), ")");
  conv1_ = register_module("conv1", conv(3, 64, 7, 2, 3));
  bn1_ = register_module("bn1", BatchNorm2d(64));
  maxpool_ = register_module("maxpool",
                             torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
  int64_t in_planes = 64;
  layer1_ = register_module("layer1", resnet_stage(in_planes, 64, o.layers()[0], 1, o.ibn()));
  layer2_ = register_module("layer2", resnet_stage(in_planes, 128, o.layers()[1], 2, o.ibn()));
  layer3_ = register_module("layer3", resnet_stage(in_planes, 256, o.layers()[2], 2, o.ibn()));
  layer4_ = register_module("layer4", resnet_stage(in_planes, 512, o.layers()[3], o.last_stride(), false));
  init_resnet_weights(*this);
  // After the initialisation above: a non-local block's last batch norm starts at zero.
  TORCH_CHECK(o.non_local().size() == 4, "ResNet needs 4 non-local counts");
  non_local_.resize(4);
  std::vector<torch::nn::Sequential> stages = {layer1_, layer2_, layer3_, layer4_};
  for (std::size_t s = 0; s < 4; ++s) {
    const int64_t count = o.non_local()[s], blocks = o.layers()[s];
    TORCH_CHECK(count >= 0 && count <= blocks, "layer", s + 1, " has ", blocks, " blocks; cannot follow ", count,
                " of them with non-local blocks");
    if (count == 0) continue;
    torch::nn::ModuleList list;
    const int64_t width = 64 * (int64_t{1} << s) * BottleneckImpl::kExpansion;
    for (int64_t i = 0; i < count; ++i) {
      NonLocal block(width);
      list->push_back(block);
      non_local_[s].emplace_back(blocks - count + i, block);
    }
    register_module("NL_" + std::to_string(s + 1), list);
  }

  head_.build(*this, in_planes, o.head());
}

torch::Tensor ResNetImpl::featuremaps(const torch::Tensor& images) {
  auto x = maxpool_->forward((bn1_->forward(conv1_->forward(images))).relu_());
  std::vector<torch::nn::Sequential> stages = {layer1_, layer2_, layer3_, layer4_};
  for (std::size_t s = 0; s < 4; ++s) {
    if (non_local_[s].empty()) {
      x = stages[s]->forward(x);
      continue;
    }
    auto next = non_local_[s].begin();
    for (std::size_t b = 0; b < stages[s]->size(); ++b) {
      x = stages[s]->at<BottleneckImpl>(b).forward(x);
      for (; next != non_local_[s].end() && next->first == static_cast<int64_t>(b); ++next) x = next->second->forward(x);
    }
  }
  return x;
}

}  // namespace reid::models
