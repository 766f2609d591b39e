// reid-train: train a model from a YAML config, evaluating periodically and keeping the best.
// SIGINT/SIGTERM write a checkpoint and exit with 130/143; --resume continues from it.
#include "cli.h"
#include "reid/core/logging.h"
#include "reid/engine/trainer.h"

int main(int argc, char** argv) {
  return reid::tools::run_main([&]() -> int {
    CLI::App app{"reid-train: train a person re-identification model from a YAML config"};
    reid::tools::CommonOptions options;
    bool resume = false;
    reid::tools::add_common_options(app, options);
    app.add_flag("--resume", resume, "Continue from <output-dir>/checkpoints/last.ckpt");
    if (const int code = reid::tools::parse_command_line(app, argc, argv); code >= 0) return code;
    const reid::Config config = reid::tools::load_config(options);
    if (reid::tools::prepare_run(config, options, "reid-train")) return 0;
    reid::engine::install_signal_handlers();
    const auto result = reid::engine::train(config, resume);
    if (result.interrupted) return 130;
    for (const auto& r : result.results)
      reid::logger().info("final {}: {}", r.first, r.second.summary(config.test.ranks));
    return 0;
  });
}
