#include "reid/app/session.h"

#include <cstdint>
#include <filesystem>

#include "reid/config/loader.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"

namespace reid::app {

void start_job(const Config& config, const std::string& tool, const std::string& source,
               const std::string& config_name, int rank, bool verbose) {
  if (rank > 0) {
    // Only rank 0 writes files; the others report problems on the console.
    setup_logging("", verbose);
    logger().set_console_prefix("[rank " + std::to_string(rank) + "] ");
    if (!verbose) logger().set_level(LogLevel::kWarn);
    set_num_threads(config.threads);
    seed_everything(static_cast<std::uint64_t>(config.seed));
    return;
  }
  const std::filesystem::path out(config.output_dir);
  setup_logging((out / "log.txt").string(), verbose);
  if (!config_name.empty()) config::save_config(config, (out / config_name).string());
  set_num_threads(config.threads);
  seed_everything(static_cast<std::uint64_t>(config.seed));
  logger().info("{} {}", tool, source.empty() ? "(built-in defaults)" : source);
  const std::string report = environment_report();
  for (std::size_t start = 0; start < report.size();) {
    const auto end = report.find('\n', start);
    logger().info("{}", report.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  logger().info("output directory: {}", config.output_dir);
}

}  // namespace reid::app
