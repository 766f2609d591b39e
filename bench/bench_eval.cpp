// Evaluation speed and memory, end to end from features: distances + CMC/mAP/mINP, optionally
// with k-reciprocal re-ranking. Features are synthetic but shaped like the real benchmarks
// (identities as clusters, several cameras):
//   market: 3,368 queries x 15,913 gallery, 512-d        msmt: 11,659 x 82,161, 512-d
//
//   bench_eval --scenario market --write DIR     generate the features once, as .npy files
//   bench_eval --features DIR [--rerank]         load them and evaluate
// The second form prints the wall time and the peak resident memory of the process, which holds
// nothing but LibTorch, the features and the evaluation. bench/numpy_eval.py evaluates the same
// files the way torchreid's Python evaluator does (bench/run_eval_bench.sh runs both).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "reid/core/runtime.h"
#include "reid/eval/metrics.h"
#include "reid/eval/rerank.h"
#include "reid/io/npy.h"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Peak resident set size of this process so far, in MiB.
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

struct Split {
  torch::Tensor features, pids, camids;
};

// `n` images of identities drawn from [0, ids), each a noisy copy of its identity's centre,
// cameras 0..cams-1 with a per-camera offset (so that cross-camera matching is harder).
Split make_split(const torch::Tensor& centres, const torch::Tensor& camera_shift, int64_t n, int64_t first_id,
                 int64_t ids, int64_t cams, double noise) {
  Split s;
  s.pids = torch::randint(first_id, first_id + ids, {n}, torch::kLong);
  s.camids = torch::randint(0, cams, {n}, torch::kLong);
  s.features = centres.index_select(0, s.pids) + camera_shift.index_select(0, s.camids) +
               noise * torch::randn({n, centres.size(1)});
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"LibReID evaluation benchmark"};
  std::string scenario = "market", write_dir, features_dir;
  bool rerank = false;
  int threads = 0;
  int64_t block_rows = 0;
  app.add_option("--block-rows", block_rows, "Query rows per distance block (0 = about 64 MB)");
  app.add_option("--scenario", scenario, "market or msmt (with --write)")->check(CLI::IsMember({"market", "msmt"}));
  app.add_option("--write", write_dir, "Generate the scenario's features and save them as .npy files here");
  app.add_option("--features", features_dir, "Evaluate the .npy features in this folder");
  app.add_flag("--rerank", rerank, "k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3)");
  app.add_option("--threads", threads, "Intra-op threads (0 = all cores)");
  CLI11_PARSE(app, argc, argv);
  reid::set_num_threads(threads);

  if (!write_dir.empty()) {
    const bool msmt = scenario == "msmt";
    const int64_t nq = msmt ? 11659 : 3368, ng = msmt ? 82161 : 15913, dim = 512;
    const int64_t ids = msmt ? 3060 : 750, cams = msmt ? 15 : 6;
    torch::manual_seed(0);
    const auto centres = torch::randn({ids, dim});
    const auto shift = 0.8 * torch::randn({cams, dim});
    const Split query = make_split(centres, shift, nq, 0, ids, cams, 1.3);
    const Split gallery = make_split(centres, shift, ng, 0, ids, cams, 1.3);
    reid::io::write_npy(write_dir + "/qf.npy", query.features);
    reid::io::write_npy(write_dir + "/gf.npy", gallery.features);
    reid::io::write_npy(write_dir + "/q_pids.npy", query.pids);
    reid::io::write_npy(write_dir + "/g_pids.npy", gallery.pids);
    reid::io::write_npy(write_dir + "/q_camids.npy", query.camids);
    reid::io::write_npy(write_dir + "/g_camids.npy", gallery.camids);
    std::printf("wrote %s features (%lld x %lld, %lld-d) to %s\n", scenario.c_str(), static_cast<long long>(nq),
                static_cast<long long>(ng), static_cast<long long>(dim), write_dir.c_str());
    return 0;
  }
  if (features_dir.empty()) {
    std::fprintf(stderr, "error: give --write DIR or --features DIR\n");
    return 2;
  }
  double start = now();
  const auto qf = reid::io::read_features(features_dir + "/qf.npy");
  const auto gf = reid::io::read_features(features_dir + "/gf.npy");
  const auto qp = reid::io::read_labels(features_dir + "/q_pids.npy", qf.size(0));
  const auto gp = reid::io::read_labels(features_dir + "/g_pids.npy", gf.size(0));
  const auto qc = reid::io::read_labels(features_dir + "/q_camids.npy", qf.size(0));
  const auto gc = reid::io::read_labels(features_dir + "/g_camids.npy", gf.size(0));
  const double load = now() - start;
  const int64_t nq = qf.size(0), ng = gf.size(0);
  std::printf("%lld queries x %lld gallery, %lld-d, %d threads; features loaded in %.2f s\n",
              static_cast<long long>(nq), static_cast<long long>(ng), static_cast<long long>(qf.size(1)),
              torch::get_num_threads(), load);
  const double rss_before = peak_rss_mib();
  start = now();
  reid::eval::EvalResult result;
  reid::eval::EvalOptions options;
  options.block_rows = block_rows;
  double build = 0;
  if (rerank) {
    reid::eval::KReciprocalReranker reranker(qf, gf, reid::eval::Metric::kEuclidean);
    build = now() - start;
    std::printf("re-ranking: neighbour pass + sparse encoding %.2f s, %.1f MiB kept\n", build,
                reranker.memory_bytes() / 1048576.0);
    result = reid::eval::evaluate_streaming([&](int64_t b, int64_t e) { return reranker.rows(b, e); }, nq, ng, qp,
                                            gp, qc, gc, options);
  } else {
    result = reid::eval::evaluate_features(qf, gf, qp, gp, qc, gc, reid::eval::Metric::kEuclidean, options);
  }
  const double total = now() - start;
  std::printf("%s\n", result.summary().c_str());
  std::printf("libreid%s: %.2f s evaluation (+ %.2f s loading .npy); peak RSS %.0f MiB (%.0f MiB with the features "
              "loaded, before evaluating)\n",
              rerank ? " rerank" : "", total, load, peak_rss_mib(), rss_before);
  return 0;
}
