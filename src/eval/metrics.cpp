#include "reid/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <unordered_map>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/core/runtime.h"
#include "reid/utils/random.h"

namespace reid::eval {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const std::vector<double> kRocPoints = {1e-4, 1e-3, 1e-2};

std::vector<int64_t> to_vector(const torch::Tensor& t, int64_t expected, const char* what) {
  TORCH_CHECK(t.dim() == 1, what, " must be a 1-D tensor (got ", t.sizes(), ")");
  TORCH_CHECK(t.size(0) == expected, what, " has ", t.size(0), " entries but there are ", expected, " features");
  TORCH_CHECK(!t.is_floating_point(), what, " must hold integers");
  const auto c = t.to(torch::kCPU, torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + expected);
}

// A gallery item's sort key: distance, then index (a stable sort's order).
struct Key {
  float d;
  int32_t i;
};
inline bool operator<(const Key& a, const Key& b) { return a.d < b.d || (a.d == b.d && a.i < b.i); }

struct Labels {
  std::vector<int64_t> q_pid, q_cam, g_pid, g_cam;
  std::unordered_map<int64_t, std::vector<int32_t>> gallery_by_pid;
  const std::vector<int32_t>* group(int64_t pid) const {
    const auto it = gallery_by_pid.find(pid);
    return it == gallery_by_pid.end() ? nullptr : &it->second;
  }
  // A query is valid when some gallery item shares its identity but not its camera.
  bool valid(int64_t q) const {
    const auto* members = group(q_pid[q]);
    if (!members) return false;
    for (int32_t g : *members)
      if (g_cam[g] != q_cam[q]) return true;
    return false;
  }
};

Labels make_labels(int64_t nq, int64_t ng, const torch::Tensor& qp, const torch::Tensor& gp, const torch::Tensor& qc,
                   const torch::Tensor& gc) {
  TORCH_CHECK(ng < std::numeric_limits<int32_t>::max(), "gallery too large");
  Labels l{to_vector(qp, nq, "query pids"), to_vector(qc, nq, "query camids"), to_vector(gp, ng, "gallery pids"),
           to_vector(gc, ng, "gallery camids"), {}};
  for (int64_t g = 0; g < ng; ++g) l.gallery_by_pid[l.g_pid[g]].push_back(static_cast<int32_t>(g));
  return l;
}

struct Outcome {
  bool valid = false;
  int64_t first_rank = 0;
  double ap = kNaN, inp = kNaN;
};

// Per-thread scratch space.
struct Scratch {
  std::vector<Key> matches, junk;
  std::vector<int64_t> hist;
  std::vector<float> negatives, positives;
  float negative_threshold = std::numeric_limits<float>::infinity();
};

// Number of matches whose key is smaller than `key`.
inline int64_t position(const std::vector<Key>& matches, const Key& key) {
  if (key.d < matches.front().d) return 0;
  if (key.d > matches.back().d) return static_cast<int64_t>(matches.size());
  return std::lower_bound(matches.begin(), matches.end(), key) - matches.begin();
}

// A NaN distance has no rank (every comparison with it is false): one error naming the pair,
// instead of metrics of an undefined order.
[[noreturn]] void nan_distance(int64_t q, int64_t g) {
  throw Error("the distance of query " + std::to_string(q) + " to gallery item " + std::to_string(g) +
              " is NaN: the features or distances contain NaN (a diverged model, or uninitialised rows?)");
}

Outcome evaluate_row(const float* d, int64_t ng, int64_t q, const Labels& labels, Scratch& s,
                     AveragePrecision average_precision) {
  Outcome out;
  const auto* members = labels.group(labels.q_pid[q]);
  if (!members) return out;
  s.matches.clear();
  s.junk.clear();
  for (int32_t g : *members) {
    if (std::isnan(d[g])) nan_distance(q, g);
    (labels.g_cam[g] == labels.q_cam[q] ? s.junk : s.matches).push_back({d[g], g});
  }
  if (s.matches.empty()) return out;
  std::sort(s.matches.begin(), s.matches.end());
  const int64_t k = static_cast<int64_t>(s.matches.size());
  s.hist.assign(static_cast<std::size_t>(k + 1), 0);
  const float dmin = s.matches.front().d, dmax = s.matches.back().d;
  int64_t below = 0, above = 0;
  for (int64_t i = 0; i < ng; ++i) {
    const float di = d[i];
    if (di < dmin) {
      ++below;
    } else if (di > dmax) {
      ++above;
    } else {  // between the first and the last match, or NaN (no comparison holds)
      if (std::isnan(di)) nan_distance(q, i);
      ++s.hist[static_cast<std::size_t>(
          std::lower_bound(s.matches.begin(), s.matches.end(), Key{di, static_cast<int32_t>(i)}) - s.matches.begin())];
    }
  }
  s.hist[0] += below;
  s.hist[static_cast<std::size_t>(k)] += above;
  // Take the identity's own items out: match j sits at position j; junk wherever it falls.
  for (int64_t j = 0; j < k; ++j) --s.hist[static_cast<std::size_t>(j)];
  for (const Key& key : s.junk) --s.hist[static_cast<std::size_t>(position(s.matches, key))];

  // rank(m_j) = non-identity items before it + j earlier matches + 1.
  int64_t before = 0;
  double precision_sum = 0.0;
  int64_t last_rank = 0;
  for (int64_t j = 0; j < k; ++j) {
    before += s.hist[static_cast<std::size_t>(j)];
    const int64_t rank = before + j + 1;
    if (j == 0) out.first_rank = rank;
    const double precision = static_cast<double>(j + 1) / static_cast<double>(rank);
    if (average_precision == AveragePrecision::kHits) {
      precision_sum += precision;
    } else {  // trapezoid between the precision just before this match and at it
      const double before_match = rank == 1 ? 1.0 : static_cast<double>(j) / static_cast<double>(rank - 1);
      precision_sum += 0.5 * (before_match + precision);
    }
    last_rank = rank;
  }
  out.valid = true;
  out.ap = precision_sum / static_cast<double>(k);
  out.inp = static_cast<double>(k) / static_cast<double>(last_rank);
  return out;
}

// ROC bookkeeping: keep the positive distances and, per thread, only the smallest negatives.
void collect_pairs(const float* d, int64_t ng, int64_t q, const Labels& labels, std::size_t keep, Scratch& s) {
  const int64_t pid = labels.q_pid[q];
  for (const Key& m : s.matches) s.positives.push_back(m.d);
  const int64_t* gpid = labels.g_pid.data();
  for (int64_t i = 0; i < ng; ++i)
    if (d[i] < s.negative_threshold && gpid[i] != pid) s.negatives.push_back(d[i]);
  if (s.negatives.size() > 2 * keep + 1024) {
    std::nth_element(s.negatives.begin(), s.negatives.begin() + static_cast<std::ptrdiff_t>(keep), s.negatives.end());
    s.negatives.resize(keep + 1);
    s.negative_threshold = *std::max_element(s.negatives.begin(), s.negatives.end());
  }
}

[[noreturn]] void no_valid_query(const Labels& labels) {
  std::vector<int64_t> cams(labels.q_cam);
  cams.insert(cams.end(), labels.g_cam.begin(), labels.g_cam.end());
  std::sort(cams.begin(), cams.end());
  const bool one_camera = !cams.empty() && cams.front() == cams.back();
  std::string message = "no query has a true match in the gallery: all " + std::to_string(labels.q_pid.size()) +
                        " queries were skipped";
  if (one_camera)
    message += " because every image has camera id " + std::to_string(cams.front()) +
               ", and gallery images from the query's camera are not counted (Market protocol); give "
               "query and gallery images the ids of the cameras that took them (docs/datasets.md)";
  else
    message += " (their identities appear in the gallery only under the query's own camera, or not at all)";
  throw Error(message);
}

EvalResult finish(std::vector<Outcome>& outcomes, int64_t max_rank) {
  EvalResult r;
  r.num_queries = static_cast<int64_t>(outcomes.size());
  std::vector<int64_t> hits(static_cast<std::size_t>(max_rank), 0);
  double ap = 0, inp = 0;
  for (const auto& o : outcomes) {
    r.ap.push_back(o.ap);
    r.inp.push_back(o.inp);
    r.first_rank.push_back(o.first_rank);
    if (!o.valid) continue;
    ++r.num_valid;
    ap += o.ap;
    inp += o.inp;
    if (o.first_rank <= max_rank) ++hits[static_cast<std::size_t>(o.first_rank - 1)];
  }
  r.cmc.resize(static_cast<std::size_t>(max_rank));
  int64_t cumulative = 0;
  for (int64_t k = 0; k < max_rank; ++k) {
    cumulative += hits[static_cast<std::size_t>(k)];
    r.cmc[static_cast<std::size_t>(k)] = static_cast<double>(cumulative) / static_cast<double>(r.num_valid);
  }
  r.mAP = ap / static_cast<double>(r.num_valid);
  r.mINP = inp / static_cast<double>(r.num_valid);
  return r;
}

std::string percent(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.1f%%", 100.0 * value);
  return buffer;
}

}  // namespace

std::string EvalResult::summary(const std::vector<int>& ranks) const {
  std::string text = std::string(average_precision == AveragePrecision::kTrapezoid ? "mAP (trapezoid) " : "mAP ") +
                     percent(mAP) + " | mINP " + percent(mINP);
  for (int k : ranks)
    if (k >= 1 && k <= static_cast<int>(cmc.size())) text += " | rank-" + std::to_string(k) + " " + percent(cmc[k - 1]);
  for (const auto& point : tpr_at_fpr) {
    char buffer[64];
    std::snprintf(buffer, sizeof(buffer), " | TPR@FPR=%.0e %s", point.first, percent(point.second).c_str());
    text += buffer;
  }
  text += " (" + std::to_string(num_valid) + "/" + std::to_string(num_queries) + " queries valid)";
  return text;
}

std::string EvalResult::to_json(const std::vector<int>& ranks) const {
  std::ostringstream out;
  out.precision(8);
  out << "{\"num_queries\": " << num_queries << ", \"num_valid_queries\": " << num_valid << ", \"mAP\": " << mAP
      << ", \"mINP\": " << mINP << ", \"average_precision\": \"" << average_precision_name(average_precision) << "\"";
  for (int k : ranks)
    if (k >= 1 && k <= static_cast<int>(cmc.size())) out << ", \"rank" << k << "\": " << cmc[k - 1];
  for (const auto& point : tpr_at_fpr) {
    char key[32];
    std::snprintf(key, sizeof(key), "TPR@FPR=%.0e", point.first);
    out << ", \"" << key << "\": " << point.second;
  }
  out << ", \"cmc\": [";
  for (std::size_t i = 0; i < cmc.size(); ++i) out << (i ? ", " : "") << cmc[i];
  out << "]}";
  return out.str();
}

EvalResult evaluate_streaming(const DistanceSource& source, int64_t nq, int64_t ng, const torch::Tensor& query_pids,
                              const torch::Tensor& gallery_pids, const torch::Tensor& query_camids,
                              const torch::Tensor& gallery_camids, const EvalOptions& options) {
  TORCH_CHECK(options.max_rank >= 1, "max_rank must be >= 1");
  TORCH_CHECK(nq > 0 && ng > 0, "evaluation needs queries and gallery items (got ", nq, " and ", ng, ")");
  const Labels labels = make_labels(nq, ng, query_pids, gallery_pids, query_camids, gallery_camids);

  // Negative pairs over the valid queries (for the ROC), known before any distance.
  int64_t negatives_total = 0;
  bool any_valid = false;
  for (int64_t q = 0; q < nq; ++q) {
    if (!labels.valid(q)) continue;
    any_valid = true;
    negatives_total += ng - static_cast<int64_t>(labels.group(labels.q_pid[q])->size());
  }
  if (!any_valid) no_valid_query(labels);
  const std::size_t keep =
      static_cast<std::size_t>(std::floor(kRocPoints.back() * static_cast<double>(negatives_total))) + 1;

  std::vector<Outcome> outcomes(static_cast<std::size_t>(nq));
  std::vector<Scratch> scratch(static_cast<std::size_t>(std::max(1, at::get_num_threads())));
  const int64_t block = options.block_rows > 0 ? options.block_rows : block_rows_for(nq, ng);
  for (int64_t begin = 0; begin < nq; begin += block) {
    const int64_t end = std::min(nq, begin + block);
    torch::Tensor distances = source(begin, end);
    TORCH_CHECK(distances.dim() == 2 && distances.size(0) == end - begin && distances.size(1) == ng,
                "distance block must be [", end - begin, ", ", ng, "] (got ", distances.sizes(), ")");
    distances = distances.to(torch::kCPU, torch::kFloat).contiguous();
    const float* base = distances.data_ptr<float>();
    at::parallel_for(begin, end, 1, [&](int64_t first, int64_t last) {
      Scratch& s = scratch[static_cast<std::size_t>(at::get_thread_num()) % scratch.size()];
      for (int64_t q = first; q < last; ++q) {
        const float* row = base + (q - begin) * ng;
        outcomes[static_cast<std::size_t>(q)] = evaluate_row(row, ng, q, labels, s, options.average_precision);
        if (options.roc && outcomes[static_cast<std::size_t>(q)].valid) collect_pairs(row, ng, q, labels, keep, s);
      }
    });
  }
  EvalResult result = finish(outcomes, options.max_rank);
  result.average_precision = options.average_precision;

  if (options.roc) {
    std::vector<float> positives, negatives;
    for (auto& s : scratch) {
      positives.insert(positives.end(), s.positives.begin(), s.positives.end());
      negatives.insert(negatives.end(), s.negatives.begin(), s.negatives.end());
    }
    std::sort(negatives.begin(), negatives.end());
    std::sort(positives.begin(), positives.end());
    for (double fpr : kRocPoints) {
      const std::size_t n = static_cast<std::size_t>(std::floor(fpr * static_cast<double>(negatives_total)));
      const float threshold = n < negatives.size() ? negatives[n] : std::numeric_limits<float>::infinity();
      const auto below = std::lower_bound(positives.begin(), positives.end(), threshold) - positives.begin();
      result.tpr_at_fpr.emplace_back(fpr, positives.empty() ? 0.0 : static_cast<double>(below) / positives.size());
    }
  }
  return result;
}

EvalResult evaluate(const torch::Tensor& distances, const torch::Tensor& query_pids, const torch::Tensor& gallery_pids,
                    const torch::Tensor& query_camids, const torch::Tensor& gallery_camids, const EvalOptions& options) {
  TORCH_CHECK(distances.dim() == 2, "distances must be [Q, G] (got ", distances.sizes(), ")");
  const auto d = distances.to(torch::kCPU, torch::kFloat).contiguous();
  return evaluate_streaming([&](int64_t b, int64_t e) { return d.narrow(0, b, e - b); }, d.size(0), d.size(1),
                            query_pids, gallery_pids, query_camids, gallery_camids, options);
}

EvalResult evaluate_features(const torch::Tensor& query_features, const torch::Tensor& gallery_features,
                             const torch::Tensor& query_pids, const torch::Tensor& gallery_pids,
                             const torch::Tensor& query_camids, const torch::Tensor& gallery_camids, Metric metric,
                             const EvalOptions& options) {
  DistanceBlocks blocks(query_features, gallery_features, metric);
  return evaluate_streaming([&](int64_t b, int64_t e) { return blocks.rows(b, e); }, blocks.num_query(),
                            blocks.num_gallery(), query_pids, gallery_pids, query_camids, gallery_camids, options);
}

EvalResult evaluate_cuhk03_single_shot(const torch::Tensor& distances, const torch::Tensor& query_pids,
                                       const torch::Tensor& gallery_pids, const torch::Tensor& query_camids,
                                       const torch::Tensor& gallery_camids, int64_t max_rank, int repeats,
                                       uint64_t seed, AveragePrecision average_precision) {
  TORCH_CHECK(distances.dim() == 2, "distances must be [Q, G]");
  TORCH_CHECK(repeats >= 1, "repeats must be >= 1");
  const auto d = distances.to(torch::kCPU, torch::kFloat).contiguous();
  const int64_t nq = d.size(0), ng = d.size(1);
  const Labels labels = make_labels(nq, ng, query_pids, gallery_pids, query_camids, gallery_camids);
  std::vector<Outcome> outcomes(static_cast<std::size_t>(nq));
  std::vector<std::vector<double>> cmcs(static_cast<std::size_t>(nq));
  const float* base = d.data_ptr<float>();
  at::parallel_for(0, nq, 1, [&](int64_t first, int64_t last) {
    Scratch s;
    for (int64_t q = first; q < last; ++q) {
      const float* row = base + q * ng;
      Outcome o = evaluate_row(row, ng, q, labels, s, average_precision);
      outcomes[static_cast<std::size_t>(q)] = o;
      if (!o.valid) continue;
      // Kept gallery items (not same identity + same camera), grouped by identity.
      std::unordered_map<int64_t, std::vector<int32_t>> groups;
      for (int32_t g = 0; g < ng; ++g)
        if (!(labels.g_pid[g] == labels.q_pid[q] && labels.g_cam[g] == labels.q_cam[q])) groups[labels.g_pid[g]].push_back(g);
      std::vector<std::pair<int64_t, std::vector<int32_t>*>> ordered;
      for (auto& group : groups) ordered.emplace_back(group.first, &group.second);
      std::sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      utils::Rng rng(mix_seed(seed, static_cast<uint64_t>(q)));
      std::vector<double> cmc(static_cast<std::size_t>(max_rank), 0.0);
      for (int r = 0; r < repeats; ++r) {
        // One random image per identity; rank of the query identity's image among them.
        Key match{0, 0};
        std::vector<Key> others;
        for (const auto& group : ordered) {
          const int32_t g = (*group.second)[utils::uniform_index(rng, group.second->size())];
          if (group.first == labels.q_pid[q])
            match = Key{row[g], g};
          else
            others.push_back(Key{row[g], g});
        }
        int64_t rank = 1;
        for (const Key& other : others) rank += other < match;
        for (int64_t k = rank - 1; k < max_rank; ++k) cmc[static_cast<std::size_t>(k)] += 1.0 / repeats;
      }
      cmcs[static_cast<std::size_t>(q)] = std::move(cmc);
    }
  });
  EvalResult result = finish(outcomes, max_rank);
  result.average_precision = average_precision;
  if (result.num_valid == 0) no_valid_query(labels);
  std::fill(result.cmc.begin(), result.cmc.end(), 0.0);
  for (const auto& cmc : cmcs)
    for (std::size_t k = 0; k < cmc.size(); ++k) result.cmc[k] += cmc[k] / static_cast<double>(result.num_valid);
  return result;
}

AveragePrecision parse_average_precision(const std::string& name) {
  if (name == "hits") return AveragePrecision::kHits;
  if (name == "trapezoid") return AveragePrecision::kTrapezoid;
  throw Error("unknown average-precision convention '" + name + "'; valid: hits, trapezoid");
}

std::string average_precision_name(AveragePrecision mode) {
  return mode == AveragePrecision::kTrapezoid ? "trapezoid" : "hits";
}

const MetricRegistry& builtin_metrics() {
  static const MetricRegistry registry = [] {
    MetricRegistry r("metric");
    r.add("rank1", [](const EvalResult& result) { return result.cmc.at(0); });
    r.add("map", [](const EvalResult& result) { return result.mAP; });
    r.add("minp", [](const EvalResult& result) { return result.mINP; });
    return r;
  }();
  return registry;
}

}  // namespace reid::eval
