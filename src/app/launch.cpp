#include "reid/app/launch.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "reid/core/error.h"
#include "reid/core/logging.h"

namespace reid::app {

using Clock = std::chrono::steady_clock;

namespace {

std::atomic<int> g_launcher_signal{0};

extern "C" void launcher_on_signal(int signal) { g_launcher_signal.store(signal); }

}  // namespace

int launch_local_processes(int nproc, const std::vector<std::string>& argv, std::chrono::milliseconds grace) {
  TORCH_CHECK(nproc >= 1, "launch needs at least one process (got ", nproc, ")");
  TORCH_CHECK(!argv.empty(), "launch needs a program");
  // The launcher hosts the rendezvous store, so that it outlives any rank: the others can then
  // still tell which rank died.
  c10d::TCPStoreOptions store_options;
  store_options.port = 0;
  store_options.isServer = true;
  store_options.waitWorkers = false;
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", store_options);
  const int port = store->getPort();

  std::vector<std::string> environment;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('='));
    if (key == "RANK" || key == "LOCAL_RANK" || key == "WORLD_SIZE" || key == "MASTER_ADDR" || key == "MASTER_PORT" ||
        key == "TORCHELASTIC_USE_AGENT_STORE" || key == "LOCAL_WORLD_SIZE")
      continue;
    environment.push_back(entry);
  }
  auto previous_int = std::signal(SIGINT, launcher_on_signal);
  auto previous_term = std::signal(SIGTERM, launcher_on_signal);
  std::vector<pid_t> pids(static_cast<std::size_t>(nproc), -1);
  const pid_t launcher = getpid();
  for (int rank = 0; rank < nproc; ++rank) {
    std::vector<std::string> env_strings = environment;
    env_strings.push_back("RANK=" + std::to_string(rank));
    env_strings.push_back("LOCAL_RANK=" + std::to_string(rank));
    env_strings.push_back("WORLD_SIZE=" + std::to_string(nproc));
    env_strings.push_back("LOCAL_WORLD_SIZE=" + std::to_string(nproc));
    env_strings.push_back("MASTER_ADDR=127.0.0.1");
    env_strings.push_back("MASTER_PORT=" + std::to_string(port));
    env_strings.push_back("TORCHELASTIC_USE_AGENT_STORE=True");
    std::vector<char*> envp, args;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> arg_strings = argv;
    for (auto& s : arg_strings) args.push_back(s.data());
    args.push_back(nullptr);
    const pid_t pid = fork();
    if (pid < 0) throw Error(std::string("cannot start rank ") + std::to_string(rank) + ": " + std::strerror(errno));
    if (pid == 0) {
      // Own process group: a Ctrl-C in the terminal reaches the launcher only, which forwards it
      // once (a second SIGINT would kill a rank before its checkpoint). Die with the launcher.
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != launcher) _exit(143);
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      execvpe(args[0], args.data(), envp.data());
      std::fprintf(stderr, "error: cannot start %s: %s\n", args[0], std::strerror(errno));
      _exit(127);
    }
    pids[static_cast<std::size_t>(rank)] = pid;
    logger().info("launcher: rank {} is pid {}", rank, pid);
  }

  int result = 0, first_failed = -1, forwarded = 0;
  Clock::time_point failed_at{}, terminated_at{};
  bool terminated = false, killed = false, stopping = false;
  int alive = nproc;
  while (alive > 0) {
    const int signal = g_launcher_signal.exchange(0);
    if (signal != 0) {
      ++forwarded;
      for (pid_t pid : pids)
        if (pid > 0) kill(pid, signal);
      if (forwarded > 1)  // a second Ctrl-C: stop now
        for (pid_t pid : pids)
          if (pid > 0) kill(pid, SIGKILL);
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      const auto it = std::find(pids.begin(), pids.end(), pid);
      if (it == pids.end()) continue;
      const int rank = static_cast<int>(it - pids.begin());
      *it = -1;
      --alive;
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      // 130 / 143 from a rank that exited by itself: it stopped on a signal after writing its
      // part of the checkpoint (reid-train's status for SIGINT / SIGTERM), with every other rank
      // told to stop too. The job's status is the signal's; no rank failed.
      const bool stopped = WIFEXITED(status) && (code == 128 + SIGINT || code == 128 + SIGTERM);
      if (stopped && first_failed < 0) {
        if (result == 0) {
          result = code;
          failed_at = Clock::now();
          logger().info("launcher: rank {} stopped on {}; waiting up to {} s for the other ranks", rank,
                        code == 128 + SIGTERM ? "SIGTERM" : "SIGINT", grace.count() / 1000);
        }
        stopping = true;
        continue;
      }
      if (code != 0 && first_failed < 0) {
        first_failed = rank;
        result = code;
        failed_at = Clock::now();
        if (forwarded == 0)
          logger().error("launcher: rank {} {} {}; waiting up to {} s for the other ranks", rank,
                         WIFEXITED(status) ? "exited with" : "was killed by signal",
                         WIFEXITED(status) ? code : WTERMSIG(status), grace.count() / 1000);
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    if ((first_failed >= 0 || stopping) && !terminated && Clock::now() - failed_at > grace) {
      logger().error("launcher: terminating the remaining ranks");
      for (pid_t p : pids)
        if (p > 0) kill(p, SIGTERM);
      terminated = true;
      terminated_at = Clock::now();
    }
    if (terminated && !killed && Clock::now() - terminated_at > std::chrono::seconds(10)) {
      for (pid_t p : pids)
        if (p > 0) kill(p, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  return result;
}

}  // namespace reid::app
