#pragma once
/// @file
/// What every job started from a config does before its work: reid-train, reid-test,
/// reid-extract and reid-export, and the Python package's libreid.train() / test() / export(),
/// so that a run started from Python leaves the same files as one from the shell.

#include <string>

#include "reid/config/config.h"

namespace reid::app {

/// Logs to the console and <output_dir>/log.txt (appended), writes the resolved config as
/// <output_dir>/<config_name> (nothing when `config_name` is empty), sets the LibTorch thread
/// count (config.threads) and the seed (config.seed), and logs `tool`, the config's `source` (its
/// file, or empty for the built-in defaults), the environment and the output folder. A process of
/// rank > 0 in a multi-process job writes no files and logs only warnings and errors (all
/// messages when `verbose`), prefixed with its rank.
void start_job(const Config& config, const std::string& tool, const std::string& source,
               const std::string& config_name, int rank, bool verbose);

}  // namespace reid::app
