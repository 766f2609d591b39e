#include "reid/eval/rerank.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <map>

#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace reid::eval {
namespace {

// Neighbour lists: row i holds the `width` nearest items of item i, nearest first.
struct Neighbours {
  int64_t width = 0;
  std::vector<int32_t> index;
  const int32_t* row(int64_t i) const { return index.data() + i * width; }
  bool contains(int64_t i, int64_t count, int32_t item) const {
    const int32_t* r = row(i);
    return std::find(r, r + count, item) != r + count;
  }
};

// The k-reciprocal neighbours of `i` among the first `count` neighbours of each item.
std::vector<int32_t> reciprocal(const Neighbours& nn, int64_t i, int64_t count) {
  std::vector<int32_t> out;
  const int32_t* forward = nn.row(i);
  for (int64_t j = 0; j < count; ++j)
    if (nn.contains(forward[j], count, static_cast<int32_t>(i))) out.push_back(forward[j]);
  return out;
}

}  // namespace

KReciprocalReranker::KReciprocalReranker(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric,
                                         const RerankOptions& options)
    : num_query_(query.size(0)),
      num_gallery_(gallery.size(0)),
      options_(options),
      query_gallery_(std::make_unique<DistanceBlocks>(query, gallery, metric)) {
  const auto all = torch::cat({query.to(torch::kFloat), gallery.to(torch::kFloat)}).contiguous();
  const int64_t n = all.size(0), dim = all.size(1);
  DistanceBlocks all_pairs(all, all, metric);
  // Single entries for V's weights, computed like the blocks (float32 dot products).
  const float* features = all.data_ptr<float>();
  std::vector<float> squared(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t k = 0; k < dim; ++k) s += static_cast<double>(features[i * dim + k]) * features[i * dim + k];
    squared[static_cast<std::size_t>(i)] = static_cast<float>(s);
  }
  const auto normalised = metric == Metric::kCosine ? l2_normalize(all).contiguous() : all;
  const float* unit = normalised.data_ptr<float>();
  build([&](int64_t begin, int64_t end) { return all_pairs.rows(begin, end); },
        [&](int64_t a, int64_t b) {
          float dot = 0;
          const float* x = (metric == Metric::kCosine ? unit : features) + a * dim;
          const float* y = (metric == Metric::kCosine ? unit : features) + b * dim;
          for (int64_t k = 0; k < dim; ++k) dot += x[k] * y[k];
          return metric == Metric::kCosine
                     ? 1.0f - dot
                     : squared[static_cast<std::size_t>(a)] + squared[static_cast<std::size_t>(b)] - 2 * dot;
        });
}

KReciprocalReranker::KReciprocalReranker(const torch::Tensor& all_distances, int64_t num_query,
                                         const RerankOptions& options)
    : num_query_(num_query), num_gallery_(0), options_(options) {
  TORCH_CHECK(all_distances.dim() == 2 && all_distances.size(0) == all_distances.size(1),
              "re-ranking needs a square [N, N] distance matrix (got ", all_distances.sizes(), ")");
  TORCH_CHECK(num_query >= 1 && num_query < all_distances.size(0),
              "re-ranking needs 1 <= num_query < N (got ", num_query, " of ", all_distances.size(0), ")");
  all_distances_ = all_distances.to(torch::kCPU, torch::kFloat).contiguous();
  num_gallery_ = all_distances_.size(0) - num_query;
  const float* d = all_distances_.data_ptr<float>();
  const int64_t n = all_distances_.size(0);
  // Block by block: isfinite() of the whole matrix would hold temporaries larger than it.
  for (int64_t begin = 0, block = block_rows_for(n, n); begin < n; begin += block)
    TORCH_CHECK(torch::isfinite(all_distances_.narrow(0, begin, std::min(block, n - begin))).all().item<bool>(),
                "re-ranking needs finite distances");
  build([&](int64_t begin, int64_t end) { return all_distances_.narrow(0, begin, end - begin); },
        [&](int64_t a, int64_t b) { return d[a * n + b]; });
}

void KReciprocalReranker::build(const std::function<torch::Tensor(int64_t, int64_t)>& all_rows,
                                const std::function<float(int64_t, int64_t)>& distance) {
  const RerankOptions& options = options_;
  TORCH_CHECK(options.k1 >= 1 && options.k2 >= 1, "re-ranking needs k1, k2 >= 1");
  TORCH_CHECK(options.lambda >= 0.0 && options.lambda <= 1.0, "re-ranking lambda must be in [0, 1]");
  const int64_t n = num_query_ + num_gallery_;
  TORCH_CHECK(n < std::numeric_limits<int32_t>::max(), "too many items to re-rank");
  const int64_t width = std::min<int64_t>(n, options.k1 + 1);

  // 1. One blockwise pass over the N x N distances: row maxima and nearest neighbours.
  Neighbours nn;
  nn.width = width;
  nn.index.resize(static_cast<std::size_t>(n * width));
  row_max_.resize(static_cast<std::size_t>(n));
  const int64_t block = block_rows_for(n, n);
  for (int64_t begin = 0; begin < n; begin += block) {
    const int64_t end = std::min(n, begin + block);
    const auto d = all_rows(begin, end);
    const auto maxima = std::get<0>(d.max(1)).contiguous();
    const auto nearest = std::get<1>(d.topk(width, 1, /*largest=*/false, /*sorted=*/true)).to(torch::kInt).contiguous();
    std::copy(maxima.data_ptr<float>(), maxima.data_ptr<float>() + (end - begin), row_max_.begin() + begin);
    std::copy(nearest.data_ptr<int32_t>(), nearest.data_ptr<int32_t>() + (end - begin) * width,
              nn.index.begin() + begin * width);
  }
  for (auto& m : row_max_) m = std::max(m, 1e-12f);

  // 2. V: for each item, its k-reciprocal set expanded by the candidates' (k1/2)-reciprocal
  // sets that overlap it by more than 2/3, weighted by exp(-normalised distance).
  const int64_t half = std::min<int64_t>(width, static_cast<int64_t>(std::nearbyint(options.k1 / 2.0)) + 1);
  std::vector<std::vector<Entry>> v(static_cast<std::size_t>(n));
  at::parallel_for(0, n, 16, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) {
      const std::vector<int32_t> base = reciprocal(nn, i, width);
      std::vector<int32_t> expansion = base;
      for (int32_t candidate : base) {
        const std::vector<int32_t> candidate_set = reciprocal(nn, candidate, half);
        int64_t overlap = 0;
        for (int32_t c : candidate_set) overlap += std::find(base.begin(), base.end(), c) != base.end();
        if (overlap > 2.0 / 3.0 * static_cast<double>(candidate_set.size()))
          expansion.insert(expansion.end(), candidate_set.begin(), candidate_set.end());
      }
      std::sort(expansion.begin(), expansion.end());
      expansion.erase(std::unique(expansion.begin(), expansion.end()), expansion.end());
      std::vector<Entry>& row = v[static_cast<std::size_t>(i)];
      double total = 0;
      for (int32_t x : expansion) {
        const float w = std::exp(-distance(i, x) / row_max_[static_cast<std::size_t>(i)]);
        row.push_back({x, w});
        total += w;
      }
      for (auto& e : row) e.value = static_cast<float>(e.value / total);
    }
  });

  // 3. Local query expansion: each row of V becomes the mean of the rows of its k2 nearest items.
  if (options.k2 > 1) {
    const int64_t k2 = std::min(options.k2, width);
    v_.assign(static_cast<std::size_t>(n), {});
    at::parallel_for(0, n, 16, [&](int64_t first, int64_t last) {
      for (int64_t i = first; i < last; ++i) {
        std::map<int32_t, double> sum;
        for (int64_t j = 0; j < k2; ++j)
          for (const Entry& e : v[static_cast<std::size_t>(nn.row(i)[j])]) sum[e.index] += e.value;
        auto& row = v_[static_cast<std::size_t>(i)];
        for (const auto& s : sum) row.push_back({s.first, static_cast<float>(s.second / static_cast<double>(k2))});
      }
    });
  } else {
    v_ = std::move(v);
  }

  // 4. The column index of V (invIndex in the reference code).
  columns_.assign(static_cast<std::size_t>(n), {});
  for (int64_t i = 0; i < n; ++i)
    for (const Entry& e : v_[static_cast<std::size_t>(i)]) columns_[static_cast<std::size_t>(e.index)].push_back({static_cast<int32_t>(i), e.value});
}

torch::Tensor KReciprocalReranker::rows(int64_t begin, int64_t end) {
  const int64_t rows = end - begin, ng = num_gallery_, nq = num_query_, n = nq + ng;
  const auto original = query_gallery_ ? query_gallery_->rows(begin, end)
                                       : all_distances_.narrow(0, begin, end - begin).narrow(1, nq, ng).contiguous();
  if (!buffer_.defined() || buffer_.size(0) < rows) buffer_ = torch::empty({rows, ng});
  auto out = buffer_.narrow(0, 0, rows);
  const float* d = original.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const float lambda = static_cast<float>(options_.lambda);
  at::parallel_for(0, rows, 1, [&](int64_t first, int64_t last) {
    std::vector<float> shared(static_cast<std::size_t>(n), 0.0f);
    for (int64_t r = first; r < last; ++r) {
      const int64_t q = begin + r;
      // sum over columns of min(V[q, c], V[x, c]) for every item x sharing a column with q.
      for (const Entry& e : v_[static_cast<std::size_t>(q)])
        for (const Entry& other : columns_[static_cast<std::size_t>(e.index)])
          shared[static_cast<std::size_t>(other.index)] += std::min(e.value, other.value);
      const float scale = 1.0f / row_max_[static_cast<std::size_t>(q)];
      for (int64_t g = 0; g < ng; ++g) {
        const float s = shared[static_cast<std::size_t>(nq + g)];
        const float jaccard = 1.0f - s / (2.0f - s);
        o[r * ng + g] = jaccard * (1.0f - lambda) + d[r * ng + g] * scale * lambda;
      }
      for (const Entry& e : v_[static_cast<std::size_t>(q)])
        for (const Entry& other : columns_[static_cast<std::size_t>(e.index)]) shared[static_cast<std::size_t>(other.index)] = 0.0f;
    }
  });
  return out;
}

int64_t KReciprocalReranker::memory_bytes() const {
  int64_t bytes = static_cast<int64_t>(row_max_.size() * sizeof(float));
  for (const auto& row : v_) bytes += static_cast<int64_t>(row.capacity() * sizeof(Entry));
  for (const auto& col : columns_) bytes += static_cast<int64_t>(col.capacity() * sizeof(Entry));
  return bytes;
}

torch::Tensor rerank(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric, const RerankOptions& options) {
  KReciprocalReranker reranker(query, gallery, metric, options);
  return reranker.rows(0, query.size(0));  // all of the reranker's buffer, which it hands over
}

torch::Tensor rerank_distances(const torch::Tensor& all_distances, int64_t num_query, const RerankOptions& options) {
  KReciprocalReranker reranker(all_distances, num_query, options);
  return reranker.rows(0, num_query);  // all of the reranker's buffer, which it hands over
}

torch::Tensor average_query_expansion(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric, int64_t k) {
  TORCH_CHECK(k >= 1, "query expansion needs k >= 1");
  k = std::min<int64_t>(k, gallery.size(0));
  auto q = query.to(torch::kFloat);
  auto g = gallery.to(torch::kFloat);
  if (metric == Metric::kCosine) {
    q = l2_normalize(q);
    g = l2_normalize(g);
  }
  DistanceBlocks blocks(q, g, metric);
  auto expanded = torch::empty_like(q);
  const int64_t block = block_rows_for(q.size(0), g.size(0));
  for (int64_t begin = 0; begin < q.size(0); begin += block) {
    const int64_t end = std::min(q.size(0), begin + block);
    const auto nearest = std::get<1>(blocks.rows(begin, end).topk(k, 1, false, true));
    const auto neighbours = g.index_select(0, nearest.flatten()).view({end - begin, k, g.size(1)});
    expanded.narrow(0, begin, end - begin).copy_((q.narrow(0, begin, end - begin) + neighbours.sum(1)) / (k + 1.0));
  }
  return metric == Metric::kCosine ? l2_normalize(expanded) : expanded;
}

}  // namespace reid::eval
