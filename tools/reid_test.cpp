// reid-test: evaluate trained weights on every configured test set (flip TTA, re-ranking,
// ranked lists and saved features as the config's test section says).
#include <iostream>

#include "cli.h"
#include "reid/app/test.h"

int main(int argc, char** argv) {
  return reid::tools::run_main([&]() -> int {
    CLI::App app{"reid-test: evaluate a person re-identification model"};
    reid::tools::CommonOptions options;
    std::string weights;
    reid::tools::add_common_options(app, options);
    app.add_option("--weights", weights, "Weights to evaluate (overrides test.weights; default: the best or "
                                         "final weights in the output directory)");
    if (const int code = reid::tools::parse_command_line(app, argc, argv); code >= 0) return code;
    if (!weights.empty()) options.overrides.push_back("test.weights=" + weights);
    const reid::Config config = reid::tools::load_config(options);
    if (reid::tools::prepare_run(config, options, "reid-test", "config_test.yaml")) return 0;
    const auto results = reid::app::test(config);
    for (const auto& r : results) std::cout << r.first << ": " << r.second.summary(config.test.ranks) << "\n";
    return 0;
  });
}
