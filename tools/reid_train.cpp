// reid-train: train a model from a YAML config, evaluating periodically and keeping the best.
// SIGINT/SIGTERM write a checkpoint and exit with 130/143; --resume continues from it.
// --nproc-per-node N trains data-parallel with N processes on this machine; the same binary
// also joins a job started by an external launcher (RANK, WORLD_SIZE, MASTER_ADDR, ...).
#include <csignal>
#include <filesystem>

#include "cli.h"
#include "reid/app/launch.h"
#include "reid/app/train.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"

namespace {

// The command line without --nproc-per-node, to start the ranks with.
std::vector<std::string> rank_command_line(int argc, char** argv) {
  std::vector<std::string> out{std::filesystem::read_symlink("/proc/self/exe").string()};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--nproc-per-node") {
      ++i;
      continue;
    }
    if (arg.rfind("--nproc-per-node=", 0) == 0) continue;
    out.push_back(arg);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  return reid::tools::run_main([&]() -> int {
    CLI::App app{"reid-train: train a person re-identification model from a YAML config"};
    reid::tools::CommonOptions options;
    bool resume = false, overwrite = false;
    int nproc = 1;
    reid::tools::add_common_options(app, options);
    app.add_flag("--resume", resume, "Continue from <output-dir>/checkpoints/last.ckpt");
    app.add_flag("--overwrite", overwrite,
                 "Start afresh in an output folder that already holds a run (the files a run writes are "
                 "removed: checkpoint, weights, metrics, its TensorBoard events; nothing else)");
    app.add_option("--nproc-per-node", nproc,
                   "Train data-parallel with N processes on this machine (data.batch_size stays the global batch)")
        ->check(reid::tools::at_least(1, "a number of processes"));
    if (const int code = reid::tools::parse_command_line(app, argc, argv); code >= 0) return code;
    const reid::Config config = reid::tools::load_config(options);
    if (resume && overwrite) throw reid::tools::UsageError("--overwrite cannot be combined with --resume");
    const auto job = reid::engine::distributed_options_from_environment();
    const int rank = job ? job->rank : 0;
    if (reid::tools::print_requested(config, options)) return 0;
    // Every name the run looks up (model, datasets, losses, sampler, optimiser, schedule, best
    // metric), before anything is written or a rank is started.
    reid::engine::check_names(config, reid::engine::Registries{}, /*training=*/true);
    // Before anything is written into the folder (the log included): refuse to mix two runs,
    // and refuse a resume the checkpoint cannot support.
    if (rank == 0) {
      reid::app::prepare_run_folder(config.output_dir, resume, overwrite);
      if (resume) reid::app::check_resume(config);
    }
    if (nproc > 1) {
      if (job && job->world_size > 1)
        throw reid::ConfigError("--nproc-per-node", "this process already belongs to a " +
                                                        std::to_string(job->world_size) +
                                                        "-process job (WORLD_SIZE is set): start it without --nproc-per-node");
      reid::engine::check_batch_split(config, nproc);
      return reid::app::launch_local_processes(nproc, rank_command_line(argc, argv),
                                                  std::chrono::seconds(config.distributed.timeout));
    }
    if (reid::tools::prepare_run(config, options, "reid-train", "", rank)) return 0;
    reid::engine::install_signal_handlers();
    reid::app::TrainSetup setup;
    setup.resume = resume;
    setup.overwrite = overwrite;
    setup.distributed = job;
    const auto result = reid::app::train(config, setup);
    if (result.interrupted) return 128 + (reid::engine::stop_signal() ? reid::engine::stop_signal() : SIGINT);
    for (const auto& r : result.results)
      reid::logger().info("final {}: {}", r.first, r.second.summary(config.test.ranks));
    return 0;
  });
}
