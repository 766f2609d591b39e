// reid-train: train a model from a YAML config, evaluating periodically and keeping the best.
#include "cli.h"
#include "reid/core/logging.h"

int main(int argc, char** argv) {
  return reid::tools::run_main([&]() -> int {
    CLI::App app{"reid-train: train a person re-identification model from a YAML config"};
    reid::tools::CommonOptions options;
    bool resume = false;
    reid::tools::add_common_options(app, options);
    app.add_flag("--resume", resume, "Continue from the last checkpoint in the output directory");
    CLI11_PARSE(app, argc, argv);
    const reid::Config config = reid::tools::load_config(options);
    if (reid::tools::prepare_run(config, options, "reid-train")) return 0;
    reid::logger().info("training is not implemented yet");
    return 0;
  });
}
