#include "reid/eval/visualize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/data/image_io.h"
#include "reid/eval/rerank.h"
#include "reid/utils/files.h"

namespace reid::eval {
namespace {

void draw_tile(cv::Mat& canvas, const std::string& path, int x, int y, const RankedListOptions& o,
               const cv::Scalar& border, const std::string& line1, const std::string& line2) {
  cv::Mat image;
  cv::resize(data::read_image(path), image, cv::Size(o.width, o.height));
  image.copyTo(canvas(cv::Rect(x, y, o.width, o.height)));
  cv::rectangle(canvas, cv::Rect(x - 2, y - 2, o.width + 4, o.height + 4), border, 3);
  const double scale = 0.38;
  cv::putText(canvas, line1, {x, y + o.height + 16}, cv::FONT_HERSHEY_SIMPLEX, scale, {0, 0, 0}, 1, cv::LINE_AA);
  cv::putText(canvas, line2, {x, y + o.height + 30}, cv::FONT_HERSHEY_SIMPLEX, scale, {0, 0, 0}, 1, cv::LINE_AA);
}

}  // namespace

std::vector<int64_t> worst_queries(const EvalResult& result, int64_t count) {
  std::vector<int64_t> valid;
  for (std::size_t q = 0; q < result.ap.size(); ++q)
    if (!std::isnan(result.ap[q])) valid.push_back(static_cast<int64_t>(q));
  std::stable_sort(valid.begin(), valid.end(), [&](int64_t a, int64_t b) { return result.ap[a] < result.ap[b]; });
  if (static_cast<int64_t>(valid.size()) > count) valid.resize(static_cast<std::size_t>(count));
  return valid;
}

std::vector<std::string> write_ranked_lists(const std::function<torch::Tensor(int64_t)>& distance_row,
                                            const FeatureSet& query, const FeatureSet& gallery,
                                            const std::vector<int64_t>& queries, const std::string& dir,
                                            const RankedListOptions& o) {
  if (query.paths.empty() || gallery.paths.empty())
    throw Error("ranked lists need the image paths of the query and gallery sets");
  std::filesystem::create_directories(dir);
  const auto g_pids = gallery.pids.contiguous();
  const auto g_cams = gallery.camids.contiguous();
  const int64_t* gp = g_pids.data_ptr<int64_t>();
  const int64_t* gc = g_cams.data_ptr<int64_t>();
  const int margin = 10, gap = 8, text = 36;
  std::vector<std::string> written;
  for (std::size_t position = 0; position < queries.size(); ++position) {
    const int64_t q = queries[position];
    const int64_t qp = query.pids[q].item<int64_t>(), qc = query.camids[q].item<int64_t>();
    const auto row = distance_row(q).to(torch::kCPU, torch::kFloat).contiguous();
    const float* d = row.data_ptr<float>();
    std::vector<int64_t> order;
    for (int64_t g = 0; g < gallery.size(); ++g)
      if (!(gp[g] == qp && gc[g] == qc)) order.push_back(g);
    const std::size_t k = std::min<std::size_t>(static_cast<std::size_t>(o.topk), order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](int64_t a, int64_t b) { return d[a] < d[b] || (d[a] == d[b] && a < b); });
    const int width = margin * 2 + static_cast<int>(k + 1) * (o.width + gap) + 3 * gap;
    cv::Mat canvas(margin * 2 + o.height + text, width, CV_8UC3, cv::Scalar(255, 255, 255));
    draw_tile(canvas, query.paths[static_cast<std::size_t>(q)], margin, margin, o, {0, 0, 0},
              "pid " + std::to_string(qp), "cam " + std::to_string(qc));
    for (std::size_t i = 0; i < k; ++i) {
      const int64_t g = order[i];
      char distance[32];
      std::snprintf(distance, sizeof(distance), "d %.3g", d[g]);
      const bool match = gp[g] == qp;
      draw_tile(canvas, gallery.paths[static_cast<std::size_t>(g)],
                margin + static_cast<int>(i + 1) * (o.width + gap) + 3 * gap, margin, o,
                match ? cv::Scalar(0, 170, 0) : cv::Scalar(0, 0, 220), "cam " + std::to_string(gc[g]), distance);
    }
    char name[64];
    std::snprintf(name, sizeof(name), "%03zu_q%lld.png", position, static_cast<long long>(q));
    const std::string path = (std::filesystem::path(dir) / name).string();
    utils::write_atomically(path, "the ranked list", [&](const std::string& temporary) {
      if (!cv::imwrite(temporary, canvas)) throw IOError(path, "cannot write the ranked list");
    });
    written.push_back(path);
  }
  return written;
}

std::vector<std::string> write_worst_ranked_lists(const FeatureSet& query, const FeatureSet& gallery,
                                                  const EvalResult& result, const RetrievalOptions& retrieval,
                                                  int64_t count, const std::string& dir,
                                                  const RankedListOptions& options) {
  // Not a structured binding: C++17 lambdas cannot capture one (clang refuses).
  const auto prepared = prepare_features(query, gallery, retrieval);
  const torch::Tensor &q = prepared.first, &g = prepared.second;
  std::unique_ptr<KReciprocalReranker> reranker;
  if (retrieval.rerank) reranker = std::make_unique<KReciprocalReranker>(q, g, retrieval.metric, retrieval.rerank_options);
  return write_ranked_lists(
      [&](int64_t i) {
        return reranker ? reranker->rows(i, i + 1)[0].clone() : compute_distance(q.narrow(0, i, 1), g, retrieval.metric)[0];
      },
      query, gallery, worst_queries(result, count), dir, options);
}

}  // namespace reid::eval
