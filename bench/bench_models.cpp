// Model table: parameters (without the classifier), multiply-adds at 256x128, and CPU forward
// time of a batch of 32 at 256x128 in eval mode, for every registered network.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "reid/core/runtime.h"
#include "reid/models/summary.h"

int main(int argc, char** argv) {
  CLI::App app{"LibReID model table"};
  int threads = 0, batch = 32, height = 256, width = 128, repeats = 5;
  bool channels_last = true;
  app.add_option("--threads", threads, "Intra-op threads (0 = all cores)");
  app.add_option("--batch-size", batch);
  app.add_option("--height", height);
  app.add_option("--width", width);
  app.add_option("--repeats", repeats, "Timed forward passes (the median is reported)");
  app.add_option("--channels-last", channels_last, "Channels-last parameters and input (as reid-test uses)");
  std::vector<std::string> names = reid::models::builtin_models().names();
  app.add_option("--models", names, "Registered models to measure (default: every one)")->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  reid::set_num_threads(threads);
  std::printf("%d threads, batch %d at %dx%d, %s\n", torch::get_num_threads(), batch, height, width,
              channels_last ? "channels-last" : "NCHW");
  std::printf("| model | parameters (no classifier) | mult-adds | forward, batch %d | images/s |\n|---|---|---|---|---|\n", batch);
  for (const auto& name : names) {
    auto model = reid::models::builtin_models().create(
        name, reid::models::ModelOptions().head(reid::models::HeadOptions().num_classes(751)));
    const auto summary = reid::models::summarize(*model, height, width);
    model->eval();
    auto x = torch::randn({batch, 3, height, width});
    if (channels_last) {
      reid::models::to_channels_last(*model);
      x = x.contiguous(at::MemoryFormat::ChannelsLast);
    }
    torch::NoGradGuard no_grad;
    model->forward(x);
    std::vector<double> times;
    for (int r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      model->forward(x);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    std::printf("| %s | %lld | %.3f G | %.0f ms | %.0f |\n", name.c_str(),
                static_cast<long long>(summary.backbone_parameters), summary.mult_adds / 1e9, 1000 * median,
                batch / median);
  }
  return 0;
}
