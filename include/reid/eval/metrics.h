#pragma once
/// @file
/// Retrieval metrics under the Market-1501 protocol, computed in a streaming fashion: query
/// blocks of distances are produced, evaluated and dropped, so memory stays bounded whatever the
/// gallery size, and no row is ever fully sorted.
///
/// Protocol (what torchreid, fast-reid and BoT implement): for each query, gallery items with the
/// same identity AND the same camera are removed; queries left with no true match are skipped;
/// CMC@k is the fraction of valid queries whose first true match ranks within k; AP is the
/// non-interpolated mean, over true matches, of the precision at each match's rank; mINP
/// (fast-reid) averages (number of true matches) / (rank of the last one).
///
/// Ties in distance are broken by gallery index: the ranking is exactly that of a stable sort
/// (numpy's argsort(kind="stable")). torchreid uses numpy's default quicksort, whose order among
/// equal distances is unspecified, so on exact ties the two may differ; nothing else can.
///
/// For a query whose true matches are m_1 < ... < m_k (by distance, then index), only the position
/// of every gallery item relative to the k matches is needed: one pass over the row with a binary
/// search among the matches for the items that fall between the first and the last match.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "reid/core/registry.h"
#include "reid/eval/distance.h"

namespace reid::eval {

/// How a query's average precision is computed from the ranks of its true matches r_1 < ... < r_k
/// (1-based, after the same-camera removal).
enum class AveragePrecision {
  /// The mean over the matches of the precision at each, (1/k) sum_j j / r_j: what torchreid,
  /// fast-reid and BoT compute, and what most papers report.
  kHits,
  /// The trapezoidal area under the precision-recall curve, as the official Market-1501
  /// evaluation code (compute_AP.m) computes it: (1/k) sum_j (p_{j-1} + j / r_j) / 2, with
  /// p_{j-1} = (j - 1) / (r_j - 1), the precision just before the match (1 when r_j = 1). It is
  /// never higher than kHits; the gap on Market-1501 is about 0.5-1 mAP point.
  kTrapezoid,
};

/// "hits" / "trapezoid"; throws reid::Error otherwise.
AveragePrecision parse_average_precision(const std::string& name);
/// The inverse of parse_average_precision().
std::string average_precision_name(AveragePrecision mode);

/// Options of the evaluation.
struct EvalOptions {
  /// Length of the CMC curve.
  int64_t max_rank = 50;
  /// Query rows per distance block; 0 chooses them so that a block takes about 64 MB.
  int64_t block_rows = 0;
  /// Also compute TPR at FPR 1e-4, 1e-3 and 1e-2 over the query-gallery pairs.
  bool roc = false;
  /// The average-precision convention of `ap` and mAP.
  AveragePrecision average_precision = AveragePrecision::kHits;
};

/// What the evaluation found.
/// The CMC ranks reported by default (logs, metrics.jsonl, test.ranks).
inline const std::vector<int> kDefaultRanks = {1, 5, 10, 20};

struct EvalResult {
  /// CMC curve, cmc[k - 1] = CMC@k, for k = 1..max_rank.
  std::vector<double> cmc;
  double mAP = 0.0;
  double mINP = 0.0;
  int64_t num_queries = 0;
  /// Queries with at least one true match (the ones averaged over).
  int64_t num_valid = 0;
  /// Per query: AP, INP and the rank (1-based) of the first true match; NaN / 0 when skipped.
  std::vector<double> ap, inp;
  std::vector<int64_t> first_rank;
  /// TPR at FPR 1e-4, 1e-3, 1e-2 (when EvalOptions::roc); see evaluate_streaming().
  std::vector<std::pair<double, double>> tpr_at_fpr;
  /// The convention `ap` and mAP were computed with.
  AveragePrecision average_precision = AveragePrecision::kHits;

  /// "mAP 43.0% | mINP 12.3% | rank-1 60.7% | rank-5 ..." for the given ranks.
  std::string summary(const std::vector<int>& ranks = kDefaultRanks) const;
  /// The metrics as a JSON object (percentages as fractions in [0, 1]), with the AP convention
  /// ("average_precision": "hits" or "trapezoid").
  std::string to_json(const std::vector<int>& ranks = kDefaultRanks) const;
};

/// Registry of the figures a run can select its best model by (solver.best_metric): each reads
/// one number from an EvalResult, higher is better.
using MetricRegistry = Registry<double(const EvalResult&)>;

/// The built-in figures: rank1 (CMC@1), map, minp.
const MetricRegistry& builtin_metrics();

/// Produces the distances of queries [begin, end) to the whole gallery: a [end - begin, G]
/// float32 CPU tensor (valid until the next call).
using DistanceSource = std::function<torch::Tensor(int64_t begin, int64_t end)>;

/// The streaming evaluation over distances from `source`. Throws reid::Error when no query has a
/// true match (with the likely cause when query and gallery use one camera only).
///
/// TPR at FPR f counts the positive pairs (same identity, other camera) whose distance is below
/// that of the floor(f N)+1-th closest negative pair (different identity), N being the number of
/// negative pairs: the operating point that admits f N false positives. Same-identity
/// same-camera pairs are ignored, as in the ranking.
EvalResult evaluate_streaming(const DistanceSource& source, int64_t num_query, int64_t num_gallery,
                              const torch::Tensor& query_pids, const torch::Tensor& gallery_pids,
                              const torch::Tensor& query_camids, const torch::Tensor& gallery_camids,
                              const EvalOptions& options = {});

/// The evaluation of a full [Q, G] distance matrix.
EvalResult evaluate(const torch::Tensor& distances, const torch::Tensor& query_pids,
                    const torch::Tensor& gallery_pids, const torch::Tensor& query_camids,
                    const torch::Tensor& gallery_camids, const EvalOptions& options = {});

/// The evaluation of features: distances computed block by block, never the whole matrix.
EvalResult evaluate_features(const torch::Tensor& query_features, const torch::Tensor& gallery_features,
                             const torch::Tensor& query_pids, const torch::Tensor& gallery_pids,
                             const torch::Tensor& query_camids, const torch::Tensor& gallery_camids,
                             Metric metric, const EvalOptions& options = {});

/// CUHK03's classic single-gallery-shot CMC: for each query, `repeats` times, one random gallery
/// image per identity is kept (after the same-camera removal) and the CMC of that reduced
/// gallery is averaged; AP/mAP are computed on the whole gallery as usual. Draws come from
/// `seed` (per query), so results are reproducible, unlike the anchors'. `distances` is [Q, G].
EvalResult evaluate_cuhk03_single_shot(const torch::Tensor& distances, const torch::Tensor& query_pids,
                                       const torch::Tensor& gallery_pids, const torch::Tensor& query_camids,
                                       const torch::Tensor& gallery_camids, int64_t max_rank = 50,
                                       int repeats = 10, uint64_t seed = 0,
                                       AveragePrecision average_precision = AveragePrecision::kHits);

}  // namespace reid::eval
