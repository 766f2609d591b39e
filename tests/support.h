#pragma once
// Helpers shared by the tests: temporary directories, files, running the built executables, and
// the real-data root.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "reid/data/records.h"

namespace reid::test {

namespace fs = std::filesystem;

/// A fresh directory under the system temp dir, removed (with its contents) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

/// Writes `text` to `path`, creating parent directories.
void write_file(const fs::path& path, const std::string& text);

/// The whole content of `path`.
std::string read_file(const fs::path& path);

/// Exit status and captured streams of a command.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs `command` through /bin/sh, capturing stdout and stderr separately.
CommandResult run_command(const std::string& command);

/// Starts `argv` in the background with stdout and stderr appended to `log`; returns its pid.
int spawn(const std::vector<std::string>& argv, const fs::path& log);

/// Waits for process `pid` to end and returns its exit code (128 + signal when killed).
int wait_exit(int pid);

/// wait_exit with a limit: a process still running after `limit` is killed (SIGKILL), reaped,
/// and -2 is returned, so that a hung child fails its test instead of hanging the suite.
int wait_exit(int pid, std::chrono::milliseconds limit);

/// The repository root (for configs/ and docs/).
fs::path source_dir();

/// Expects the weight files `a` and `b` (state dicts) to hold the same tensors, bit for bit.
void expect_same_weights(const std::string& a, const std::string& b);

/// Path of a built executable, e.g. tool("reid-train").
std::string tool(const std::string& name);

/// The Python that runs the interop and parity checks (torch, torchvision and onnxruntime: the
/// environment scripts/setup.sh makes), as configured; empty when none was found.
std::string python();

/// The interop and ONNX parity tests fail, rather than skip, without python() unless
/// REID_SKIP_PYTHON_TESTS is set (scripts/gpu_build.sh sets it on a machine without them).
#define REID_REQUIRE_PYTHON()                                                                  \
  do {                                                                                         \
    if (::reid::test::python().empty()) {                                                      \
      if (std::getenv("REID_SKIP_PYTHON_TESTS")) GTEST_SKIP() << "REID_SKIP_PYTHON_TESTS set"; \
      FAIL() << "no Python with torch, torchvision and onnxruntime was found at configure "    \
                "time; run scripts/setup.sh (or set REID_SKIP_PYTHON_TESTS=1)";                \
    }                                                                                          \
  } while (0)

/// Largest absolute difference between autograd's gradient of the scalar function `f` at `x`
/// and central finite differences (step `h`), computed in double precision.
double gradient_error(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                      const torch::Tensor& x, double h = 1e-6);

/// Writes a small random image (JPEG or PNG by extension) of `height` x `width`.
void write_image(const fs::path& path, int height = 16, int width = 8, unsigned seed = 0);

/// The real-data root from REID_DATA_ROOT, or "" when unset.
std::string data_root();

/// The tiny training run of the engine tests (OSNet x0.25 on 8 synthetic identities, 64 x 32,
/// 3 epochs of CE + triplet, evaluated every epoch), as YAML without output_dir.
extern const char* const kTinyTrainingConfig;

/// Records of synthetic images: identities first_pid .. first_pid + ids - 1, each seen once by
/// cameras 0 .. cams - 1 (64 x 32 pixels), in that order.
data::RecordList synthetic_records(int64_t first_pid, int64_t ids, int64_t cams);

}  // namespace reid::test

/// Skips the current test, with a message, when REID_DATA_ROOT is not set.
#define REID_REQUIRE_DATA()                                                             \
  do {                                                                                  \
    if (::reid::test::data_root().empty())                                              \
      GTEST_SKIP() << "REID_DATA_ROOT is not set: skipping the real-data test";         \
  } while (0)
