// The bounded-memory re-ranking against a direct, dense transcription of the published
// algorithm (Zhong et al., CVPR 2017), and average query expansion.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include <torch/torch.h>

#include "reid/eval/metrics.h"
#include "reid/eval/rerank.h"

namespace reid::eval {
namespace {

// Dense reference in double precision, following the reference code step by step.
torch::Tensor dense_rerank(const torch::Tensor& q, const torch::Tensor& g, Metric metric, int64_t k1, int64_t k2,
                           double lambda) {
  const auto all = torch::cat({q, g}).to(torch::kDouble);
  const int64_t nq = q.size(0), n = all.size(0);
  auto dist = compute_distance(all.to(torch::kFloat), all.to(torch::kFloat), metric).to(torch::kDouble);
  // original_dist = transpose(dist / max(dist, axis=0)): row i divided by its own maximum.
  dist = (dist / std::get<0>(dist.max(0)).unsqueeze(0)).t().contiguous();
  std::vector<std::vector<int64_t>> rank(n);
  for (int64_t i = 0; i < n; ++i) {
    rank[i].resize(n);
    std::iota(rank[i].begin(), rank[i].end(), 0);
    std::stable_sort(rank[i].begin(), rank[i].end(),
                     [&](int64_t a, int64_t b) { return dist[i][a].item<double>() < dist[i][b].item<double>(); });
  }
  auto reciprocal = [&](int64_t i, int64_t k) {
    std::vector<int64_t> out;
    for (int64_t j = 0; j <= k; ++j) {
      const int64_t f = rank[i][j];
      if (std::find(rank[f].begin(), rank[f].begin() + k + 1, i) != rank[f].begin() + k + 1) out.push_back(f);
    }
    return out;
  };
  auto V = torch::zeros({n, n}, torch::kDouble);
  for (int64_t i = 0; i < n; ++i) {
    const auto base = reciprocal(i, k1);
    std::vector<int64_t> expansion = base;
    for (int64_t c : base) {
      const auto cand = reciprocal(c, static_cast<int64_t>(std::nearbyint(k1 / 2.0)));
      int64_t overlap = 0;
      for (int64_t x : cand) overlap += std::count(base.begin(), base.end(), x);
      if (overlap > 2.0 / 3.0 * cand.size()) expansion.insert(expansion.end(), cand.begin(), cand.end());
    }
    std::set<int64_t> unique(expansion.begin(), expansion.end());
    double total = 0;
    for (int64_t x : unique) total += std::exp(-dist[i][x].item<double>());
    for (int64_t x : unique) V[i][x] = std::exp(-dist[i][x].item<double>()) / total;
  }
  if (k2 != 1) {
    auto qe = torch::zeros_like(V);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < k2; ++j) qe[i] += V[rank[i][j]];
      qe[i] /= static_cast<double>(k2);
    }
    V = qe;
  }
  auto jaccard = torch::zeros({nq, n}, torch::kDouble);
  for (int64_t i = 0; i < nq; ++i) {
    const auto shared = torch::minimum(V[i].unsqueeze(0).expand({n, n}), V).sum(1);
    jaccard[i] = 1.0 - shared / (2.0 - shared);
  }
  const auto final_dist = jaccard * (1 - lambda) + dist.narrow(0, 0, nq) * lambda;
  return final_dist.narrow(1, nq, n - nq).to(torch::kFloat);
}

// Identities as clusters, so that neighbourhoods are meaningful.
std::pair<torch::Tensor, torch::Tensor> clustered(int64_t nq, int64_t ng, int64_t ids, int64_t dim) {
  const auto centres = torch::randn({ids, dim}) * 2.0;
  auto sample = [&](int64_t n) { return centres.index_select(0, torch::randint(0, ids, {n}, torch::kLong)) + torch::randn({n, dim}); };
  return {sample(nq), sample(ng)};
}

TEST(Rerank, EqualsTheDenseReferenceAlgorithm) {
  torch::manual_seed(0);
  const auto [q, g] = clustered(12, 60, 8, 6);
  for (auto metric : {Metric::kEuclidean, Metric::kCosine})
    for (auto params : {std::make_tuple(20, 6, 0.3), std::make_tuple(5, 1, 0.5), std::make_tuple(7, 3, 0.0)}) {
      const auto [k1, k2, lambda] = params;
      RerankOptions options;
      options.k1 = k1;
      options.k2 = k2;
      options.lambda = lambda;
      const auto ours = rerank(q, g, metric, options);
      const auto expected = dense_rerank(q, g, metric, k1, k2, lambda);
      EXPECT_LT((ours - expected).abs().max().item<float>(), 1e-4)
          << "k1 " << k1 << " k2 " << k2 << " lambda " << lambda;
    }
}

TEST(Rerank, FromAPrecomputedMatrixEqualsFromFeatures) {
  // The same distances given as a matrix: the same neighbours, weights and result.
  torch::manual_seed(3);
  const auto [q, g] = clustered(10, 50, 8, 5);
  const auto all = torch::cat({q, g});
  for (auto metric : {Metric::kEuclidean, Metric::kCosine}) {
    RerankOptions options;
    options.k1 = 9;
    options.k2 = 3;
    const auto from_features = rerank(q, g, metric, options);
    const auto from_matrix = rerank_distances(compute_distance(all, all, metric), 10, options);
    EXPECT_LT((from_features - from_matrix).abs().max().item<float>(), 1e-5);
  }
  // What the matrix must be.
  EXPECT_THROW(rerank_distances(torch::zeros({4, 5}), 2), c10::Error);
  EXPECT_THROW(rerank_distances(torch::zeros({4, 4}), 4), c10::Error);
  EXPECT_THROW(rerank_distances(torch::full({4, 4}, std::nan("")), 2), c10::Error);
}

TEST(Rerank, BlocksOfQueriesGiveTheSameRows) {
  torch::manual_seed(1);
  const auto [q, g] = clustered(9, 40, 6, 5);
  KReciprocalReranker reranker(q, g, Metric::kEuclidean);
  const auto whole = reranker.rows(0, 9).clone();
  const auto part = reranker.rows(4, 7).clone();
  EXPECT_TRUE(torch::allclose(part, whole.narrow(0, 4, 3)));
  EXPECT_GT(reranker.memory_bytes(), 0);
}

TEST(Rerank, ImprovesRetrievalOnClusteredData) {
  torch::manual_seed(2);
  const auto centres = torch::randn({20, 8});
  auto ids = [](int64_t n, int64_t per) { return torch::arange(n, torch::kLong).div(per, "floor"); };
  const auto gp = ids(200, 10), qp = ids(40, 2);
  const auto gf = centres.index_select(0, gp) + 0.9 * torch::randn({200, 8});
  const auto qf = centres.index_select(0, qp) + 0.9 * torch::randn({40, 8});
  const auto qc = torch::zeros({40}, torch::kLong), gc = torch::ones({200}, torch::kLong);
  const auto plain = evaluate_features(qf, gf, qp, gp, qc, gc, Metric::kEuclidean);
  const auto reranked = evaluate(rerank(qf, gf, Metric::kEuclidean), qp, gp, qc, gc);
  EXPECT_GT(reranked.mAP, plain.mAP);
}

TEST(QueryExpansion, AveragesTheQueryWithItsNearestGalleryItems) {
  const auto q = torch::tensor({{0.0f, 0.0f}});
  const auto g = torch::tensor({{1.0f, 0.0f}, {0.0f, 3.0f}, {10.0f, 10.0f}});
  const auto one = average_query_expansion(q, g, Metric::kEuclidean, 1);
  EXPECT_TRUE(torch::allclose(one, torch::tensor({{0.5f, 0.0f}})));
  const auto two = average_query_expansion(q, g, Metric::kEuclidean, 2);
  EXPECT_TRUE(torch::allclose(two, torch::tensor({{1.0f / 3, 1.0f}})));
  const auto cosine = average_query_expansion(torch::tensor({{1.0f, 0.1f}}), g, Metric::kCosine, 1);
  EXPECT_NEAR(cosine.norm().item<float>(), 1.0f, 1e-5);
}

}  // namespace
}  // namespace reid::eval
