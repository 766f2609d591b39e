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

ResNetOptions resnet50_options(bool ibn, const ModelOptions& model) {
  return ResNetOptions().last_stride(model.last_stride()).ibn(ibn).head(model.head());
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
  auto make_layer = [&](int64_t planes, int64_t blocks, int64_t stride, bool ibn) {
    torch::nn::Sequential layer;
    for (int64_t i = 0; i < blocks; ++i) {
      layer->push_back(Bottleneck(in_planes, planes, i == 0 ? stride : 1, ibn));
      in_planes = planes * BottleneckImpl::kExpansion;
    }
    return layer;
  };
  layer1_ = register_module("layer1", make_layer(64, o.layers()[0], 1, o.ibn()));
  layer2_ = register_module("layer2", make_layer(128, o.layers()[1], 2, o.ibn()));
  layer3_ = register_module("layer3", make_layer(256, o.layers()[2], 2, o.ibn()));
  layer4_ = register_module("layer4", make_layer(512, o.layers()[3], o.last_stride(), false));

  {
    // torchvision's initialisation.
    torch::NoGradGuard no_grad;
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* c = module->as<torch::nn::Conv2d>())
        torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      else if (auto* b = module->as<BatchNorm2d>()) {
        b->weight.fill_(1.0);
        b->bias.zero_();
      }
    }
  }
  head_.build(*this, in_planes, o.head());
}

torch::Tensor ResNetImpl::featuremaps(const torch::Tensor& images) {
  auto x = maxpool_->forward((bn1_->forward(conv1_->forward(images))).relu_());
  x = layer1_->forward(x);
  x = layer2_->forward(x);
  x = layer3_->forward(x);
  return layer4_->forward(x);
}

}  // namespace reid::models
