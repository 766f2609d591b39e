// Cost of the gradient all-reduce alone: every rank arrives together (a barrier first), then
// sums a buffer of the given size; reports the median over repetitions. Run it as a job:
//   build/bin/bench_allreduce --nproc 2 --mb 1.6
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "reid/app/launch.h"
#include "reid/core/runtime.h"
#include "reid/engine/distributed.h"

int main(int argc, char** argv) {
  CLI::App app{"LibReID: all-reduce cost between local processes (c10d)"};
  int nproc = 2, repeats = 50, threads = 1;
  double mb = 1.6;
  app.add_option("--nproc", nproc, "Processes to start (when not already in a job)");
  app.add_option("--mb", mb, "Buffer size in MB (float32)");
  app.add_option("--repeats", repeats);
  app.add_option("--threads", threads);
  CLI11_PARSE(app, argc, argv);
  auto job = reid::engine::distributed_options_from_environment();
  if (!job) {
    std::vector<std::string> args{std::filesystem::read_symlink("/proc/self/exe").string()};
    for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
    return reid::app::launch_local_processes(nproc, args);
  }
  reid::set_num_threads(threads);
  reid::engine::Distributed dist(*job, torch::kCPU);
  auto buffer = torch::randn({static_cast<int64_t>(mb * 1024 * 1024 / 4)});
  std::vector<double> times;
  for (int i = 0; i < repeats + 5; ++i) {
    dist.barrier();
    const auto start = std::chrono::steady_clock::now();
    dist.all_reduce_sum(buffer);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (i >= 5) times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  if (dist.is_main())
    std::printf("all-reduce of %.2f MB over %d processes (%s): median %.2f ms, min %.2f ms\n", mb, dist.world_size(),
                dist.backend().c_str(), times[times.size() / 2], times.front());
  return 0;
}
