// Training throughput: forward + backward + optimiser step of a network on random images, as
// bench/pytorch_osnet.py does in PyTorch (run both with bench/run_train_bench.sh).
#include <chrono>
#include <cstdio>

#include <CLI/CLI.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "reid/core/runtime.h"
#include "reid/engine/optim.h"
#include "reid/losses/cross_entropy.h"
#include "reid/models/model.h"

int main(int argc, char** argv) {
  CLI::App app{"LibReID training-step throughput"};
  std::string name = "osnet_x0_25";
  int threads = 2, batch = 32, height = 256, width = 128, iterations = 30, classes = 751, window = 10,
      patch_stride = 0;
  bool channels_last = true, amp = false, forward_only = false;
  std::string device_name = "cpu";
  app.add_option("--model", name);
  app.add_option("--threads", threads, "Intra-op threads (0 = all cores)");
  app.add_option("--batch-size", batch);
  app.add_option("--height", height);
  app.add_option("--width", width);
  app.add_option("--iterations", iterations, "Timed steps, in windows of 10 (the best window is reported)");
  app.add_option("--channels-last", channels_last, "Channels-last parameters and input (reid-train's default)");
  app.add_option("--device", device_name, "cpu, cuda or cuda:N");
  app.add_flag("--amp", amp, "bfloat16 autocast (CUDA)");
  app.add_option("--window", window, "Steps per timed window");
  app.add_option("--patch-stride", patch_stride, "ViT: stride between patches (0: the patch size)");
  app.add_flag("--forward-only", forward_only, "Inference: eval-mode test features without gradients");
  CLI11_PARSE(app, argc, argv);
  reid::set_num_threads(threads);
  const torch::Device device = reid::parse_device(device_name);
  torch::manual_seed(0);
  auto model = reid::models::builtin_models().create(
      name, reid::models::ModelOptions().height(height).width(width).patch_stride(patch_stride).head(
                reid::models::HeadOptions().num_classes(classes)));
  model->train(!forward_only);
  model->to(device);
  auto x = torch::randn({batch, 3, height, width}, device);
  if (channels_last) {
    reid::models::to_channels_last(*model);
    x = x.contiguous(at::MemoryFormat::ChannelsLast);
  }
  const auto y = torch::randint(0, classes, {batch}, torch::TensorOptions(torch::kLong).device(device));
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(0.0015));
  auto step = [&] {
    if (forward_only) {
      torch::NoGradGuard no_grad;
      model->forward(x);
      return;
    }
    optimizer.zero_grad();
    torch::Tensor loss;
    {
      reid::engine::AutocastGuard autocast(amp && device.is_cuda(), torch::kBFloat16);
      loss = reid::losses::cross_entropy_label_smooth(model->forward(x, y).logits(), y, 0.1);
    }
    loss.backward();
    optimizer.step();
  };
  // Work queued on a GPU is finished before a clock is read.
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  for (int i = 0; i < 3; ++i) step();
  sync();
  double best = 0;
  for (int start = 0; start + window <= iterations; start += window) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < window; ++i) step();
    sync();
    const double rate = window * batch / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, rate);
    std::printf("iterations %d-%d: %.1f images/s\n", start, start + window - 1, rate);
  }
  std::printf("libreid %s%s: %dx%d batch %d, %s, %d threads, %s%s, best %.1f images/s\n", name.c_str(),
              forward_only ? " inference" : "", height, width, batch, device.str().c_str(), torch::get_num_threads(),
              channels_last ? "channels-last" : "NCHW",
              amp && device.is_cuda() ? ", bf16 autocast" : "", best);
  return 0;
}
