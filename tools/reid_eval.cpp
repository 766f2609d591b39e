// reid-eval: evaluate saved features (.npy, as Python users export them or reid-extract writes
// them): rank-1/5/10, mAP, mINP, optionally TPR@FPR, re-ranking and query expansion.
#include <iostream>

#include "cli.h"
#include "reid/core/error.h"
#include "reid/core/runtime.h"
#include "reid/eval/evaluator.h"
#include "reid/eval/visualize.h"
#include "reid/utils/files.h"

int main(int argc, char** argv) {
  return reid::tools::run_main([&]() -> int {
    CLI::App app{"reid-eval: evaluate query/gallery features saved as .npy files"};
    std::string qf, qp, qc, gf, gp, gc, q_paths, g_paths, metric = "euclidean", output, visualize_dir,
        average_precision = "hits";
    reid::eval::RetrievalOptions options;
    int threads = 0;
    int64_t visualize = 0;
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.add_option("--query-features", qf, "float32/float64 [N, D] .npy")->required();
    app.add_option("--query-pids", qp, "int64 [N] .npy")->required();
    app.add_option("--query-camids", qc, "int64 [N] .npy")->required();
    app.add_option("--gallery-features", gf, "float32/float64 [M, D] .npy")->required();
    app.add_option("--gallery-pids", gp, "int64 [M] .npy")->required();
    app.add_option("--gallery-camids", gc, "int64 [M] .npy")->required();
    app.add_option("--metric", metric, "euclidean (squared) or cosine")->check(CLI::IsMember({"euclidean", "cosine"}));
    app.add_flag("--normalize", options.normalize, "L2-normalise the features first");
    app.add_flag("--rerank", options.rerank, "k-reciprocal re-ranking");
    app.add_option("--k1", options.rerank_options.k1, "re-ranking k1 (default 20)");
    app.add_option("--k2", options.rerank_options.k2, "re-ranking k2 (default 6)");
    app.add_option("--lambda", options.rerank_options.lambda, "re-ranking lambda (default 0.3)");
    app.add_option("--query-expansion", options.query_expansion, "average query expansion with K neighbours (0 = off)");
    app.add_option("--max-rank", options.eval.max_rank, "length of the CMC curve (default 50)");
    app.add_flag("--roc", options.eval.roc, "also report TPR at FPR 1e-4, 1e-3, 1e-2");
    app.add_option("--ap", average_precision,
                   "average precision: hits (mean precision at each true match, as torchreid and fast-reid; "
                   "default) or trapezoid (as the official Market-1501 code)")
        ->check(CLI::IsMember({"hits", "trapezoid"}));
    app.add_flag("--cuhk03-single-shot", options.cuhk03_single_shot,
                 "CUHK03 classic single-gallery-shot CMC (10 repeats, seeded by --seed)");
    app.add_option("--seed", options.seed, "seed of the single-gallery-shot draws");
    app.add_option("--output", output, "write the metrics as JSON to this file");
    app.add_option("--query-paths", q_paths, "image paths of the queries (.npy strings), for --visualize");
    app.add_option("--gallery-paths", g_paths, "image paths of the gallery (.npy strings), for --visualize");
    app.add_option("--visualize", visualize, "draw ranked lists of the N worst queries (needs the paths)");
    app.add_option("--visualize-dir", visualize_dir, "folder for the ranked lists (default: ranked_lists)");
    app.add_option("--threads", threads, "intra-op threads (0 = all cores)");
    app.failure_message([](const CLI::App*, const CLI::Error& e) { return std::string("error: ") + e.what() + " (see --help)\n"; });
    if (const int code = reid::tools::parse_command_line(app, argc, argv); code >= 0) return code;

    reid::set_num_threads(threads);
    options.metric = reid::eval::parse_metric(metric);
    options.eval.average_precision = reid::eval::parse_average_precision(average_precision);
    const auto query = reid::eval::load_feature_set(qf, qp, qc, q_paths);
    const auto gallery = reid::eval::load_feature_set(gf, gp, gc, g_paths);
    if (query.features.size(1) != gallery.features.size(1))
      throw reid::IOError(gf, "gallery features have " + std::to_string(gallery.features.size(1)) +
                                  " dimensions but the query features (" + qf + ") have " +
                                  std::to_string(query.features.size(1)));
    if (visualize > 0 && (q_paths.empty() || g_paths.empty()))
      throw reid::ConfigError("--visualize", "needs --query-paths and --gallery-paths");
    const auto result = reid::eval::evaluate_retrieval(query, gallery, options);
    std::cout << "query " << query.size() << " x gallery " << gallery.size() << ", " << metric
              << (options.normalize ? ", normalised" : "") << (options.rerank ? ", re-ranked" : "") << "\n";
    std::cout << result.summary({1, 5, 10}) << "\n";
    if (!output.empty()) reid::utils::write_file_atomically(output, result.to_json(reid::eval::kDefaultRanks) + "\n", "the metrics");
    if (visualize > 0) {
      const auto files = reid::eval::write_worst_ranked_lists(query, gallery, result, options, visualize,
                                                              visualize_dir.empty() ? "ranked_lists" : visualize_dir);
      std::cout << files.size() << " ranked lists written" << (options.rerank ? " (re-ranked distances)" : "") << "\n";
    }
    return 0;
  });
}
