#pragma once
/// @file
/// The process launcher of `reid-train --nproc-per-node N`: starts the ranks of a data-parallel
/// job on this machine (what torchrun does for Python), each of which joins the job through
/// engine::distributed_options_from_environment().

#include <chrono>
#include <string>
#include <vector>

namespace reid::app {

/// Starts `nproc` copies of the program `argv` on this machine (RANK, LOCAL_RANK, WORLD_SIZE,
/// MASTER_ADDR=127.0.0.1, MASTER_PORT set; the launcher hosts the rendezvous store), forwards
/// SIGINT/SIGTERM to them, and returns when all have ended: 0 when every rank succeeded,
/// otherwise the first failing rank's exit code (128 + signal when killed). A rank that fails
/// gives the others `grace` to notice and exit before they are terminated.
int launch_local_processes(int nproc, const std::vector<std::string>& argv,
                           std::chrono::milliseconds grace = std::chrono::seconds(60));

}  // namespace reid::app
