#pragma once
// Shared command-line plumbing of the LibReID executables: the common options, config loading,
// logging set-up and the top-level error handler. Each tool stays a thin main around one
// library entry point.

#include <functional>
#include <stdexcept>
#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "reid/config/config.h"

namespace reid::tools {

/// A command-line usage error (exit status 2, like a parse error).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Options every config-driven tool shares.
struct CommonOptions {
  std::string config_file;
  std::string output_dir;
  std::vector<std::string> overrides;
  std::string device;
  /// Unset unless given (any value given is validated, so --threads -3 is an error).
  int threads = std::numeric_limits<int>::min();
  bool print_config = false;
  bool list_keys = false;
  bool verbose = false;
};

/// Adds -c/--config, -o/--output-dir, --set, --print-config, --device, --threads, -v to `app`
/// and makes parse failures print one line.
void add_common_options(CLI::App& app, CommonOptions& options);

/// Parses the command line. Returns -1 to go on, otherwise the exit code to return: 0 after
/// --help, 2 after a usage error (printed as one line), the usual convention for command-line tools.
int parse_command_line(CLI::App& app, int argc, char** argv);

/// Loads and validates the config with the command-line overrides applied (--set first, then
/// -o, --device and --threads, which win).
Config load_config(const CommonOptions& options);

/// Prints the resolved config (--print-config) or the key table (--list-keys) and returns true
/// when one of them was given. Otherwise sets up
/// logging to the console and <output_dir>/log.txt, writes <output_dir>/<config_name>, sets the
/// thread count and seed, logs the environment, and returns false (an empty `config_name` writes
/// no config: reid-train's library entry point writes it once the run is known to start). A process of rank > 0 in a
/// multi-process job writes no files and logs only warnings and errors, prefixed with its rank.
bool prepare_run(const Config& config, const CommonOptions& options, const std::string& tool,
                 const std::string& config_name = "config.yaml", int rank = 0);

/// True when --print-config or --list-keys was given (and prints what they ask for).
bool print_requested(const Config& config, const CommonOptions& options);

/// Runs `body`, turning any exception into one line on stderr and exit code 1.
/// A CLI11 check: a whole number >= `minimum`; its message says so in words ("must be a number of
/// processes, 1 or more, not '0'"), where CLI11's own range checks print a 309-digit bound.
CLI::Validator at_least(long long minimum, const std::string& what);

int run_main(const std::function<int()>& body);

/// Single-line text of the exception (LibTorch errors without their backtrace).
std::string describe_exception(const std::exception& error);

}  // namespace reid::tools
