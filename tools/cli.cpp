#include "cli.h"

#include <csignal>
#include <cstdlib>
#include <iostream>

#include <c10/util/Exception.h>

#include "reid/app/session.h"
#include "reid/config/loader.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"

namespace reid::tools {

void add_common_options(CLI::App& app, CommonOptions& options) {
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("-c,--config", options.config_file,
                 "YAML config file (with _base_ inheritance); built-in defaults when omitted");
  app.add_option("-o,--output-dir", options.output_dir,
                 "Output directory (overrides output_dir)");
  app.add_option("--set", options.overrides,
                 "Override a config key, e.g. --set solver.base_lr=0.1 (value parsed as YAML; "
                 "repeatable)")
      ->take_all();
  app.add_flag("--print-config", options.print_config, "Print the resolved config and exit");
  app.add_flag("--list-keys", options.list_keys,
               "Print every config key with its type and default (tab-separated) and exit");
  app.add_option("--device", options.device, "cpu, cuda or cuda:N (overrides device)");
  app.add_option("--threads", options.threads,
                 "LibTorch intra-op threads, 0 = all cores (overrides threads)");
  app.add_flag("-v,--verbose", options.verbose, "Debug-level logging");
  app.failure_message([](const CLI::App*, const CLI::Error& error) {
    return std::string("error: ") + error.what() + " (see --help)\n";
  });
}

int parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;
  }
}

Config load_config(const CommonOptions& options) {
  std::vector<std::string> overrides = options.overrides;
  if (!options.output_dir.empty()) overrides.push_back("output_dir=" + options.output_dir);
  if (!options.device.empty()) overrides.push_back("device=" + options.device);
  if (options.threads != std::numeric_limits<int>::min())
    overrides.push_back("threads=" + std::to_string(options.threads));
  return config::load_config(options.config_file, overrides);
}

bool print_requested(const Config& config, const CommonOptions& options) {
  if (options.print_config) {
    std::cout << config::to_yaml(config);
    return true;
  }
  if (options.list_keys) {
    for (const auto& key : config::list_keys())
      std::cout << key.path << '\t' << key.type << '\t' << key.default_value << '\n';
    return true;
  }
  return false;
}

bool prepare_run(const Config& config, const CommonOptions& options, const std::string& tool,
                 const std::string& config_name, int rank) {
  if (print_requested(config, options)) return true;
  app::start_job(config, tool, options.config_file, config_name, rank, options.verbose);
  return false;
}

std::string describe_exception(const std::exception& error) {
  std::string text;
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error))
    text = torch_error->what_without_backtrace();
  else
    text = error.what();
  // One line: LibTorch messages may span several.
  for (auto& c : text)
    if (c == '\n') c = ' ';
  return text;
}

CLI::Validator at_least(long long minimum, const std::string& what) {
  return CLI::Validator(
      [minimum, what](std::string& value) -> std::string {
        try {
          std::size_t used = 0;
          const long long n = std::stoll(value, &used);
          if (used == value.size() && n >= minimum) return "";
        } catch (const std::exception&) {
        }
        return "must be " + what + ", " + std::to_string(minimum) + " or more, not '" + value + "'";
      },
      "INT >= " + std::to_string(minimum));
}

int run_main(const std::function<int()>& body) {
  // A file-size limit (ulimit -f) must fail the write that crosses it with EFBIG, which the
  // writers report naming the file and clean up after, rather than kill the process with no
  // message and a temporary file left behind.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    return body();
  } catch (const UsageError& error) {
    std::cerr << "error: " << error.what() << " (see --help)" << std::endl;
    return 2;
  } catch (const std::exception& error) {
    const std::string message = describe_exception(error);
    // In a multi-process job every rank may fail: say which one is talking.
    const char* rank = std::getenv("RANK");
    const char* world = std::getenv("WORLD_SIZE");
    const bool several = rank && world && std::string(world) != "1" && std::string(world) != "0";
    std::cerr << "error: " << (several ? "[rank " + std::string(rank) + "] " : std::string()) << message << std::endl;
    log_error_to_file(message);
    return 1;
  } catch (...) {
    std::cerr << "error: unknown exception" << std::endl;
    return 1;
  }
}

}  // namespace reid::tools
