#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/eval/metrics.h"

namespace reid::eval {
namespace {

torch::Tensor longs(std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); }

// Reference: full stable sort per query, the Market protocol written the direct way.
struct Reference {
  std::vector<double> cmc;
  double map = 0, minp = 0;
  int64_t valid = 0;
};

Reference reference(const torch::Tensor& dist, const std::vector<int64_t>& qp, const std::vector<int64_t>& gp,
                    const std::vector<int64_t>& qc, const std::vector<int64_t>& gc, int64_t max_rank) {
  Reference r;
  r.cmc.assign(max_rank, 0.0);
  const int64_t nq = dist.size(0), ng = dist.size(1);
  for (int64_t q = 0; q < nq; ++q) {
    std::vector<int64_t> order(ng);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return dist[q][a].item<float>() < dist[q][b].item<float>(); });
    std::vector<int> hits;
    for (int64_t g : order) {
      if (gp[g] == qp[q] && gc[g] == qc[q]) continue;
      hits.push_back(gp[g] == qp[q]);
    }
    const int total = std::accumulate(hits.begin(), hits.end(), 0);
    if (total == 0) continue;
    ++r.valid;
    int seen = 0;
    double ap = 0;
    int first = -1, last = -1;
    for (std::size_t i = 0; i < hits.size(); ++i) {
      if (!hits[i]) continue;
      ++seen;
      ap += static_cast<double>(seen) / (i + 1);
      if (first < 0) first = static_cast<int>(i);
      last = static_cast<int>(i);
    }
    r.map += ap / total;
    r.minp += static_cast<double>(total) / (last + 1);
    for (int64_t k = first; k < max_rank; ++k) r.cmc[k] += 1;
  }
  for (auto& c : r.cmc) c /= r.valid;
  r.map /= r.valid;
  r.minp /= r.valid;
  return r;
}

TEST(Metrics, HandComputedQueryWithJunk) {
  // Gallery: (pid, cam, distance). The pid-1 cam-0 item is junk for the query (pid 1, cam 0).
  const auto dist = torch::tensor({{0.5f, 0.2f, 0.1f, 0.9f, 1.0f}});
  const auto r = evaluate(dist, longs({1}), longs({1, 2, 1, 3, 1}), longs({0}), longs({1, 1, 0, 1, 1}),
                          EvalOptions{5});
  // Valid ranking: pid2 (0.2), pid1 (0.5), pid3 (0.9), pid1 (1.0) -> matches at ranks 2 and 4.
  EXPECT_DOUBLE_EQ(r.mAP, (1.0 / 2 + 2.0 / 4) / 2);
  EXPECT_DOUBLE_EQ(r.mINP, 2.0 / 4);
  EXPECT_EQ(r.cmc, (std::vector<double>{0, 1, 1, 1, 1}));
  EXPECT_EQ(r.first_rank[0], 2);
  EXPECT_EQ(r.num_valid, 1);
}

// Reference of the official Market-1501 AP (compute_AP.m), written as that code walks the list:
// over the ranked gallery without same-identity same-camera items, the precision after every
// item, and at each true match the trapezoid between the previous point and this one.
double trapezoid_map(const torch::Tensor& dist, const std::vector<int64_t>& qp, const std::vector<int64_t>& gp,
                     const std::vector<int64_t>& qc, const std::vector<int64_t>& gc) {
  double sum = 0;
  int valid = 0;
  for (int64_t q = 0; q < dist.size(0); ++q) {
    std::vector<int64_t> order(static_cast<std::size_t>(dist.size(1)));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return dist[q][a].item<float>() < dist[q][b].item<float>(); });
    int64_t good = 0;
    for (std::size_t g = 0; g < gp.size(); ++g) good += gp[g] == qp[q] && gc[g] != qc[q];
    if (good == 0) continue;
    ++valid;
    double ap = 0, old_recall = 0, old_precision = 1, found = 0;
    int64_t listed = 0;
    for (int64_t g : order) {
      if (gp[g] == qp[q] && gc[g] == qc[q]) continue;  // junk
      if (gp[g] == qp[q]) ++found;
      ++listed;
      const double recall = found / good, precision = found / listed;
      ap += (recall - old_recall) * (old_precision + precision) / 2;
      old_recall = recall;
      old_precision = precision;
      if (found == good) break;
    }
    sum += ap;
  }
  return sum / valid;
}

TEST(Metrics, TrapezoidalApAsTheOfficialMarketCode) {
  EXPECT_EQ(parse_average_precision("trapezoid"), AveragePrecision::kTrapezoid);
  EXPECT_EQ(average_precision_name(parse_average_precision("hits")), "hits");
  EXPECT_THROW(parse_average_precision("11point"), Error);
  // The query of HandComputedQueryWithJunk: matches at ranks 2 and 4 of the valid list.
  const auto dist = torch::tensor({{0.5f, 0.2f, 0.1f, 0.9f, 1.0f}});
  EvalOptions options{5};
  options.average_precision = AveragePrecision::kTrapezoid;
  auto r = evaluate(dist, longs({1}), longs({1, 2, 1, 3, 1}), longs({0}), longs({1, 1, 0, 1, 1}), options);
  // Match 1 at rank 2: (0 / 1 + 1 / 2) / 2; match 2 at rank 4: (1 / 3 + 2 / 4) / 2; mean of two.
  EXPECT_DOUBLE_EQ(r.mAP, ((0.0 + 0.5) / 2 + (1.0 / 3 + 0.5) / 2) / 2);
  EXPECT_DOUBLE_EQ(r.mINP, 2.0 / 4) << "mINP and CMC do not depend on the AP convention";
  EXPECT_EQ(r.cmc, (std::vector<double>{0, 1, 1, 1, 1}));
  EXPECT_EQ(r.average_precision, AveragePrecision::kTrapezoid);
  EXPECT_NE(r.to_json().find("\"average_precision\": \"trapezoid\""), std::string::npos) << r.to_json();
  EXPECT_EQ(r.summary({1}).rfind("mAP (trapezoid) ", 0), 0u) << r.summary({1});
  // A first match at rank 1 starts from precision 1.
  r = evaluate(torch::tensor({{0.1f, 0.2f, 0.3f}}), longs({1}), longs({1, 2, 1}), longs({0}), longs({1, 1, 1}), options);
  EXPECT_DOUBLE_EQ(r.mAP, ((1.0 + 1.0) / 2 + (1.0 / 2 + 2.0 / 3) / 2) / 2);
  EXPECT_NE(evaluate(dist, longs({1}), longs({1, 2, 1, 3, 1}), longs({0}), longs({1, 1, 0, 1, 1})).to_json().find(
                "\"average_precision\": \"hits\""),
            std::string::npos);

  // Random data with ties, every path: equal to the official code's walk, never above hits.
  std::mt19937 gen(1);
  for (int trial = 0; trial < 3; ++trial) {
    const int64_t nq = 19, ng = 83;
    const auto d = torch::randint(0, 10, {nq, ng}, torch::TensorOptions().dtype(torch::kFloat)) / 4.0;
    std::vector<int64_t> qp(nq), gp(ng), qc(nq), gc(ng);
    for (auto& v : qp) v = gen() % 7;
    for (auto& v : gp) v = gen() % 7;
    for (auto& v : qc) v = gen() % 3;
    for (auto& v : gc) v = gen() % 3;
    const double expected = trapezoid_map(d, qp, gp, qc, gc);
    for (int64_t block : {0, 4}) {
      EvalOptions o;
      o.block_rows = block;
      o.average_precision = AveragePrecision::kTrapezoid;
      const auto t = evaluate(d, longs(qp), longs(gp), longs(qc), longs(gc), o);
      EXPECT_NEAR(t.mAP, expected, 1e-12);
      o.average_precision = AveragePrecision::kHits;
      const auto h = evaluate(d, longs(qp), longs(gp), longs(qc), longs(gc), o);
      for (std::size_t q = 0; q < t.ap.size(); ++q) {
        if (!std::isnan(h.ap[q])) {
          EXPECT_LE(t.ap[q], h.ap[q] + 1e-15) << q;
        }
      }
    }
    const auto single = evaluate_cuhk03_single_shot(d, longs(qp), longs(gp), longs(qc), longs(gc), 20, 2, 0,
                                                    AveragePrecision::kTrapezoid);
    EXPECT_NEAR(single.mAP, expected, 1e-12);
  }
}

TEST(Metrics, NanDistancesAreAnErrorNamingThePair) {
  // NaN has no place in a ranking; the error names the first pair found, wherever it lies.
  const auto labels = std::make_tuple(longs({1, 2}), longs({1, 2, 1, 3}), longs({0, 0}), longs({1, 1, 1, 1}));
  for (int64_t column : {0, 1, 3}) {
    auto dist = torch::rand({2, 4});
    dist[1][column] = std::nanf("");
    dist[0][column] = std::nanf("");
    try {
      evaluate(dist, std::get<0>(labels), std::get<1>(labels), std::get<2>(labels), std::get<3>(labels));
      ADD_FAILURE() << "a NaN distance was ranked (column " << column << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("to gallery item " + std::to_string(column) + " is NaN"), std::string::npos)
          << e.what();
    }
  }
  // Infinite distances rank last, like any large value.
  auto dist = torch::tensor({{0.5f, std::numeric_limits<float>::infinity(), 0.1f, 0.2f}});
  const auto r = evaluate(dist, longs({1}), longs({1, 1, 3, 3}), longs({0}), longs({1, 1, 1, 1}));
  EXPECT_DOUBLE_EQ(r.mAP, (1.0 / 3 + 2.0 / 4) / 2);
}

TEST(Metrics, TiesAreBrokenByGalleryIndex) {
  // A true match and a false one at the same distance: the lower index ranks first.
  auto q = [](std::vector<int64_t> gallery_pids) {
    return evaluate(torch::tensor({{0.3f, 0.3f}}), longs({7}), longs(gallery_pids), longs({0}), longs({1, 1}),
                    EvalOptions{2});
  };
  EXPECT_EQ(q({9, 7}).first_rank[0], 2);
  EXPECT_DOUBLE_EQ(q({9, 7}).mAP, 0.5);
  EXPECT_EQ(q({7, 9}).first_rank[0], 1);
  EXPECT_DOUBLE_EQ(q({7, 9}).mAP, 1.0);
}

TEST(Metrics, QueriesWithoutTrueMatchesAreSkipped) {
  // Query 0 (pid 1, cam 0): its only pid-1 image is from cam 0 -> skipped. Query 1 is valid.
  const auto dist = torch::tensor({{0.1f, 0.2f, 0.3f}, {0.3f, 0.2f, 0.1f}});
  const auto r = evaluate(dist, longs({1, 2}), longs({1, 2, 3}), longs({0, 0}), longs({0, 1, 1}), EvalOptions{3});
  EXPECT_EQ(r.num_queries, 2);
  EXPECT_EQ(r.num_valid, 1);
  EXPECT_TRUE(std::isnan(r.ap[0]));
  EXPECT_EQ(r.first_rank[0], 0);
  // Query 1: pid3 (0.1), pid2 (0.2): rank 2 (pid 1 at 0.3 after). AP = 1/2.
  EXPECT_DOUBLE_EQ(r.mAP, 0.5);
  EXPECT_DOUBLE_EQ(r.cmc[0], 0.0);
  EXPECT_DOUBLE_EQ(r.cmc[1], 1.0);
}

TEST(Metrics, OneCameraEverywhereIsAClearError) {
  const auto dist = torch::tensor({{0.1f, 0.2f}});
  try {
    evaluate(dist, longs({1}), longs({1, 2}), longs({0}), longs({0, 0}));
    FAIL();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("no query has a true match"), std::string::npos) << message;
    EXPECT_NE(message.find("every image has camera id 0"), std::string::npos) << message;
  }
  try {
    evaluate(dist, longs({1}), longs({3, 2}), longs({0}), longs({1, 0}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("camera id 0"), std::string::npos);
  }
}

TEST(Metrics, DistractorsRankLikeAnyOtherIdentity) {
  // Gallery pid 0 (Market distractors) is just a wrong identity for the query.
  const auto dist = torch::tensor({{0.1f, 0.2f}});
  const auto r = evaluate(dist, longs({5}), longs({0, 5}), longs({0}), longs({1, 1}), EvalOptions{2});
  EXPECT_EQ(r.first_rank[0], 2);
}

TEST(Metrics, MatchesTheDirectImplementationOnRandomDataWithTies) {
  std::mt19937 gen(0);
  for (int trial = 0; trial < 4; ++trial) {
    const int64_t nq = 23, ng = 97;
    // Quantised distances produce many exact ties.
    const auto dist = torch::randint(0, 12, {nq, ng}, torch::TensorOptions().dtype(torch::kFloat)) / 4.0;
    std::vector<int64_t> qp(nq), gp(ng), qc(nq), gc(ng);
    for (auto& v : qp) v = gen() % 8;
    for (auto& v : gp) v = gen() % 8;
    for (auto& v : qc) v = gen() % 3;
    for (auto& v : gc) v = gen() % 3;
    const auto expected = reference(dist, qp, gp, qc, gc, 20);
    for (int64_t block : {0, 1, 5}) {
      EvalOptions options;
      options.max_rank = 20;
      options.block_rows = block;
      const auto r = evaluate(dist, longs(qp), longs(gp), longs(qc), longs(gc), options);
      ASSERT_EQ(r.num_valid, expected.valid);
      EXPECT_NEAR(r.mAP, expected.map, 1e-12);
      EXPECT_NEAR(r.mINP, expected.minp, 1e-12);
      for (int64_t k = 0; k < 20; ++k) EXPECT_NEAR(r.cmc[k], expected.cmc[k], 1e-12) << k;
    }
  }
}

TEST(Metrics, FeaturesPathEqualsTheDistanceMatrixPath) {
  torch::manual_seed(0);
  const auto qf = torch::randn({30, 16});
  const auto gf = torch::randn({120, 16});
  const auto qp = torch::randint(0, 10, {30}, torch::kLong), gp = torch::randint(0, 10, {120}, torch::kLong);
  const auto qc = torch::randint(0, 4, {30}, torch::kLong), gc = torch::randint(0, 4, {120}, torch::kLong);
  for (auto metric : {Metric::kEuclidean, Metric::kCosine}) {
    EvalOptions options;
    options.block_rows = 7;
    const auto a = evaluate_features(qf, gf, qp, gp, qc, gc, metric, options);
    const auto b = evaluate(compute_distance(qf, gf, metric), qp, gp, qc, gc);
    EXPECT_DOUBLE_EQ(a.mAP, b.mAP);
    EXPECT_EQ(a.cmc, b.cmc);
  }
  // Squared euclidean and cosine distances themselves.
  const auto d = compute_distance(torch::tensor({{3.0f, 4.0f}}), torch::tensor({{0.0f, 0.0f}, {3.0f, 0.0f}}), Metric::kEuclidean);
  EXPECT_NEAR(d[0][0].item<float>(), 25.0f, 1e-4);
  EXPECT_NEAR(d[0][1].item<float>(), 16.0f, 1e-4);
  const auto c = compute_distance(torch::tensor({{3.0f, 4.0f}}), torch::tensor({{0.0f, 2.0f}}), Metric::kCosine);
  EXPECT_NEAR(c[0][0].item<float>(), 1.0f - 0.8f, 1e-6);
}

TEST(Metrics, TprAtFprCountsPositivesBelowTheNegativeThreshold) {
  // 2 queries x 6 gallery; per query 1 positive and 5 negatives -> 10 negative pairs. FPR 1e-2,
  // 1e-3, 1e-4 -> floor(f * 10) = 0 false positives allowed -> threshold = smallest negative.
  const auto dist = torch::tensor({{0.1f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f}, {0.45f, 0.4f, 0.6f, 0.7f, 0.8f, 0.9f}});
  EvalOptions options;
  options.roc = true;
  options.max_rank = 6;
  const auto r = evaluate(dist, longs({1, 1}), longs({1, 2, 3, 4, 5, 6}), longs({0, 0}), longs({1, 1, 1, 1, 1, 1}), options);
  ASSERT_EQ(r.tpr_at_fpr.size(), 3u);
  // Smallest negative distance is 0.4; positives 0.1 (below) and 0.45 (not).
  for (const auto& point : r.tpr_at_fpr) EXPECT_DOUBLE_EQ(point.second, 0.5);
  EXPECT_NE(r.to_json().find("\"TPR@FPR=1e-02\": 0.5"), std::string::npos) << r.to_json();
}

TEST(Metrics, SummaryAndJson) {
  const auto r = evaluate(torch::tensor({{0.5f, 0.2f}}), longs({1}), longs({1, 2}), longs({0}), longs({1, 1}), EvalOptions{10});
  EXPECT_EQ(r.summary({1, 5}), "mAP 50.0% | mINP 50.0% | rank-1 0.0% | rank-5 100.0% (1/1 queries valid)");
  EXPECT_NE(r.to_json({1}).find("\"rank1\": 0"), std::string::npos);
  EXPECT_NE(r.to_json().find("\"num_valid_queries\": 1"), std::string::npos);
}

TEST(Cuhk03SingleShot, EqualsPlainCmcWhenEveryIdentityHasOneImage) {
  torch::manual_seed(1);
  const auto dist = torch::rand({6, 8});
  const auto qp = longs({0, 1, 2, 3, 4, 5}), gp = longs({0, 1, 2, 3, 4, 5, 6, 7});
  const auto qc = longs({0, 0, 0, 0, 0, 0}), gc = longs({1, 1, 1, 1, 1, 1, 1, 1});
  const auto a = evaluate_cuhk03_single_shot(dist, qp, gp, qc, gc, 8, 10, 3);
  const auto b = evaluate(dist, qp, gp, qc, gc, EvalOptions{8});
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(a.cmc[k], b.cmc[k], 1e-12);
  EXPECT_DOUBLE_EQ(a.mAP, b.mAP);
}

TEST(Cuhk03SingleShot, SeededAndReproducible) {
  torch::manual_seed(2);
  const auto dist = torch::rand({10, 40});
  const auto qp = torch::arange(10, torch::kLong), gp = torch::arange(40, torch::kLong).remainder(10);
  const auto qc = torch::zeros({10}, torch::kLong), gc = torch::ones({40}, torch::kLong);
  const auto a = evaluate_cuhk03_single_shot(dist, qp, gp, qc, gc, 10, 10, 5);
  const auto b = evaluate_cuhk03_single_shot(dist, qp, gp, qc, gc, 10, 10, 5);
  EXPECT_EQ(a.cmc, b.cmc);
  bool differs = false;
  for (uint64_t seed = 6; seed < 12 && !differs; ++seed)
    differs = evaluate_cuhk03_single_shot(dist, qp, gp, qc, gc, 10, 10, seed).cmc != a.cmc;
  EXPECT_TRUE(differs) << "the seed matters";
  // One sampled image per identity: rank-10 (all 10 identities) is always a hit.
  EXPECT_DOUBLE_EQ(a.cmc[9], 1.0);
  EXPECT_LT(a.cmc[0], 1.0);
}

TEST(Metrics, BadLabelsAreRejected) {
  const auto dist = torch::rand({2, 3});
  EXPECT_THROW(evaluate(dist, longs({1}), longs({1, 2, 3}), longs({0, 0}), longs({1, 1, 1})), c10::Error);
  EXPECT_THROW(evaluate(dist, torch::tensor({1.0, 2.0}), longs({1, 2, 3}), longs({0, 0}), longs({1, 1, 1})), c10::Error);
}

}  // namespace
}  // namespace reid::eval
