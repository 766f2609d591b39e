// reid-test: evaluate trained weights on every configured test set.
#include "cli.h"
#include "reid/core/logging.h"

int main(int argc, char** argv) {
  return reid::tools::run_main([&]() -> int {
    CLI::App app{"reid-test: evaluate a person re-identification model"};
    reid::tools::CommonOptions options;
    std::string weights;
    reid::tools::add_common_options(app, options);
    app.add_option("--weights", weights, "Weights to evaluate (overrides test.weights)");
    CLI11_PARSE(app, argc, argv);
    if (!weights.empty()) options.overrides.push_back("test.weights=" + weights);
    const reid::Config config = reid::tools::load_config(options);
    if (reid::tools::prepare_run(config, options, "reid-test")) return 0;
    reid::logger().info("testing is not implemented yet");
    return 0;
  });
}
