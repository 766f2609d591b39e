// Embedding throughput and latency, side by side in one run: LibReID's Embedder (crops in memory ->
// features: preprocessing + the traced model, batch norms folded, channels-last), the same model
// run eagerly, the exported ONNX file through onnxruntime (scripts/ort_run.py, model only), and
// torchreid's FeatureExtractor path in Python (bench/torchreid_extractor.py: PIL preprocessing +
// a plain PyTorch OSNet). Images/s at --batch-size and latency at batch 1, 256x128.
//
//   REID_DATA_ROOT=../shared/data build/bin/bench_embed --threads 2
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "reid/core/runtime.h"
#include "reid/data/image_io.h"
#include "reid/data/synthetic.h"
#include "reid/deploy/embedder.h"
#include "reid/deploy/onnx.h"

namespace fs = std::filesystem;

namespace {

double median_seconds(const std::function<void()>& fn, int repeats, int warmup = 2) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// The output of `command`.
std::string run(const std::string& command) {
  std::string output;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    std::array<char, 4096> buffer{};
    while (fgets(buffer.data(), static_cast<int>(buffer.size()), pipe)) output += buffer.data();
    pclose(pipe);
  }
  return output;
}

// The number after `"key":` in a command's JSON output (-1 when absent).
double field(const std::string& output, const std::string& key) {
  std::smatch match;
  if (std::regex_search(output, match, std::regex("\"" + key + "\":\\s*([0-9.eE+-]+)"))) return std::stod(match[1]);
  std::fprintf(stderr, "no %s in: %s\n", key.c_str(), output.c_str());
  return -1;
}

std::vector<cv::Mat> load_crops(const std::string& dir, int n) {
  std::vector<std::string> files;
  if (!dir.empty() && fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".jpg") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::vector<cv::Mat> crops;
  for (int i = 0; i < n; ++i)
    crops.push_back(i < static_cast<int>(files.size()) ? reid::data::read_image(files[static_cast<std::size_t>(i)])
                                                       : reid::data::render_synthetic({1, 128, 64, i, 0, i}));
  return crops;
}

void write_raw(const std::string& path, const torch::Tensor& t) {
  const auto c = t.contiguous();
  std::ofstream(path, std::ios::binary).write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"LibReID embedding throughput vs onnxruntime and torchreid's FeatureExtractor"};
  int threads = 2, batch = 32, repeats = 10, latency_repeats = 40, chunk = 0;
  std::vector<std::string> models = {"osnet_x0_25", "osnet_x1_0"};
  std::string work = "bench_embed_work", python = REID_BENCH_PYTHON;
  bool baselines = true;
  app.add_option("--threads", threads, "Intra-op threads for every side");
  app.add_option("--batch-size", batch, "Batch of the throughput figure");
  app.add_option("--repeats", repeats, "Timed batches (median reported)");
  app.add_option("--latency-repeats", latency_repeats, "Timed single crops (median reported)");
  app.add_option("--models", models);
  app.add_option("--chunk", chunk, "Embedder batch size (crops per forward pass; 0 = its automatic choice)");
  app.add_option("--work-dir", work, "Where the ONNX files and inputs are written");
  app.add_option("--python", python, "Python with torch, torchvision and onnxruntime (default: setup.sh's environment)");
  app.add_option("--baselines", baselines, "Also run onnxruntime and the Python baseline");
  CLI11_PARSE(app, argc, argv);
  reid::set_num_threads(threads);
  fs::create_directories(work);
  const char* root = std::getenv("REID_DATA_ROOT");
  const std::string images = root ? std::string(root) + "/market1501/Market-1501-v15.09.15/bounding_box_test" : "";
  const auto crops = load_crops(images, batch);
  const std::vector<cv::Mat> one(crops.begin(), crops.begin() + 1);
  const std::string bench_dir = fs::path(__FILE__).parent_path().string();
  const std::string source_dir = fs::path(bench_dir).parent_path().string();
  std::printf("%d threads, 256x128, batch %d (throughput) and 1 (latency); crops: %s\n", torch::get_num_threads(), batch,
              images.empty() || !fs::is_directory(images) ? "synthetic" : "Market-1501 bounding_box_test");
  std::printf("| model | path | images/s, batch %d | latency, batch 1 | speed-up over torchreid (images/s, latency) |\n", batch);
  std::printf("|---|---|---|---|---|\n");
  for (const auto& name : models) {
    torch::manual_seed(0);
    auto model = reid::models::builtin_models().create(
        name, reid::models::ModelOptions().head(reid::models::HeadOptions().num_classes(751)));
    model->eval();
    reid::deploy::EmbedderOptions embedder_options;
    if (chunk > 0) embedder_options.batch_size = chunk;
    const reid::deploy::Embedder embedder(*model, reid::data::TransformOptions(), embedder_options);
    struct Row {
      std::string path;
      double batch_s, single_s;
    };
    std::vector<Row> rows;
    rows.push_back({"LibReID Embedder (crops -> features, passes of " + std::to_string(embedder.batch_size()) + ")",
                    median_seconds([&] { embedder.embed(crops); }, repeats),
                    median_seconds([&] { embedder.embed(one); }, latency_repeats)});
    const auto x = embedder.preprocess(crops);
    const auto x1 = x.narrow(0, 0, 1);
    {
      torch::NoGradGuard no_grad;
      auto module = embedder.traced().module;
      const auto xc = x.contiguous(at::MemoryFormat::ChannelsLast), x1c = x1.contiguous(at::MemoryFormat::ChannelsLast);
      rows.push_back({"LibReID traced model only", median_seconds([&] { module.forward({xc}); }, repeats),
                      median_seconds([&] { module.forward({x1c}); }, latency_repeats)});
      rows.push_back({"LibReID eager model only (NCHW, unfolded)", median_seconds([&] { model->forward(x); }, repeats),
                      median_seconds([&] { model->forward(x1); }, latency_repeats)});
    }
    double torchreid_batch = -1, torchreid_single = -1;
    if (baselines) {
      reid::deploy::TracedModel cpu = reid::deploy::trace_model(*model);
      const std::string onnx = work + "/" + name + ".onnx";
      reid::deploy::export_onnx(cpu, onnx);
      write_raw(work + "/batch.f32", x);
      write_raw(work + "/one.f32", x1);
      const std::string ort = python + " " + source_dir + "/scripts/ort_run.py --model " + onnx + " --threads " +
                              std::to_string(threads) + " --warmup 2";
      rows.push_back({"onnxruntime (CPU, model only)",
                      field(run(ort + " --input " + work + "/batch.f32 --shape " + std::to_string(batch) +
                                ",3,256,128 --repeat " + std::to_string(repeats)), "median_s"),
                      field(run(ort + " --input " + work + "/one.f32 --shape 1,3,256,128 --repeat " +
                                std::to_string(latency_repeats)), "median_s")});
      const std::string py = python + " " + bench_dir + "/torchreid_extractor.py --model " + name + " --threads " +
                             std::to_string(threads) + (images.empty() ? "" : " --images " + images);
      const auto py_batch = run(py + " --batch-size " + std::to_string(batch) + " --repeat " + std::to_string(repeats));
      const auto py_one = run(py + " --batch-size 1 --repeat " + std::to_string(latency_repeats));
      torchreid_batch = field(py_batch, "e2e_median_s");
      torchreid_single = field(py_one, "e2e_median_s");
      rows.push_back({"torchreid FeatureExtractor path (crops -> features)", torchreid_batch, torchreid_single});
      rows.push_back({"torchreid model only (NCHW)", field(py_batch, "model_median_s"), field(py_one, "model_median_s")});
    }
    for (const auto& r : rows) {
      std::string ratio = "—";
      if (torchreid_batch > 0 && r.batch_s > 0) {
        char buffer[64];
        std::snprintf(buffer, sizeof(buffer), "%.2fx, %.2fx", torchreid_batch / r.batch_s, torchreid_single / r.single_s);
        ratio = buffer;
      }
      std::printf("| %s | %s | %.0f | %.1f ms | %s |\n", name.c_str(), r.path.c_str(), batch / r.batch_s,
                  1000 * r.single_s, ratio.c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}
