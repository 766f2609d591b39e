#include "support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>

#include "reid/data/synthetic.h"
#include "reid/models/weights.h"

#include <atomic>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace reid::test {

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device device;
  path_ = fs::temp_directory_path() /
          ("reid_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
           std::to_string(device()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void write_file(const fs::path& path, const std::string& text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

CommandResult run_command(const std::string& command) {
  TempDir dir;
  const auto out = dir / "stdout";
  const auto err = dir / "stderr";
  const std::string full = command + " >" + out.string() + " 2>" + err.string();
  const int status = std::system(full.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = read_file(out);
  result.err = read_file(err);
  return result;
}

double gradient_error(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                      const torch::Tensor& x, double h) {
  auto input = x.to(torch::kDouble).detach().clone().requires_grad_(true);
  f(input).backward();
  const auto analytic = input.grad().clone();
  torch::NoGradGuard no_grad;
  auto numeric = torch::zeros_like(analytic);
  auto flat = input.detach().view({-1});
  auto numeric_flat = numeric.view({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    const double original = flat[i].item<double>();
    flat[i] = original + h;
    const double plus = f(input.detach()).item<double>();
    flat[i] = original - h;
    const double minus = f(input.detach()).item<double>();
    flat[i] = original;
    numeric_flat[i] = (plus - minus) / (2 * h);
  }
  return (analytic - numeric).abs().max().item<double>();
}

void write_image(const fs::path& path, int height, int width, unsigned seed) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  cv::Mat image(height, width, CV_8UC3);
  cv::RNG(seed).fill(image, cv::RNG::UNIFORM, 0, 256);
  if (!cv::imwrite(path.string(), image)) throw std::runtime_error("cannot write " + path.string());
}

int spawn(const std::vector<std::string>& argv, const fs::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return static_cast<int>(pid);
}

int wait_exit(int pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int wait_exit(int pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const int ended = waitpid(pid, &status, WNOHANG);
    if (ended == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (ended < 0) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -2;
}

fs::path source_dir() { return REID_SOURCE_DIR; }

std::string tool(const std::string& name) { return std::string(REID_BINARY_DIR) + "/bin/" + name; }

std::string python() { return REID_PYTHON; }

std::string data_root() {
  const char* root = std::getenv("REID_DATA_ROOT");
  return root ? std::string(root) : std::string();
}

const char* const kTinyTrainingConfig = R"(
model: {name: osnet_x0_25}
data:
  sources: [synthetic]
  targets: [synthetic]
  height: 64
  width: 32
  synthetic: {train_ids: 8, test_ids: 4, cameras: 2, images_per_camera: 3, height: 64, width: 32}
  transforms: [random_flip, pad_crop, random_erasing]
  pad: 2
  batch_size: 8
  workers: 2
sampler: {name: identity, num_instances: 2}
loss: {names: [ce, triplet]}
solver: {base_lr: 0.003, max_epochs: 3, milestones: [2], warmup_epochs: 1, eval_period: 1, checkpoint_period: 1, log_period: 1}
test: {batch_size: 16}
)";

data::RecordList synthetic_records(int64_t first_pid, int64_t ids, int64_t cams) {
  std::vector<data::ImageRecord> records;
  for (int64_t pid = first_pid; pid < first_pid + ids; ++pid)
    for (int64_t cam = 0; cam < cams; ++cam)
      records.push_back({data::synthetic_path({0, 64, 32, pid, cam, 0}), pid, cam});
  return data::make_record_list(records);
}

void expect_same_weights(const std::string& a, const std::string& b) {
  const auto x = models::read_state_dict(a), y = models::read_state_dict(b);
  ASSERT_EQ(x.size(), y.size());
  for (const auto& entry : x) {
    ASSERT_TRUE(y.count(entry.first)) << entry.first;
    EXPECT_TRUE(torch::equal(entry.second, y.at(entry.first))) << entry.first << " differs";
  }
}

}  // namespace reid::test
