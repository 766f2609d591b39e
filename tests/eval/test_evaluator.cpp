#include <gtest/gtest.h>

#include <torch/torch.h>

#include "reid/data/image_io.h"
#include "reid/data/synthetic.h"
#include "reid/eval/evaluator.h"
#include "reid/eval/visualize.h"
#include "reid/io/npy.h"
#include "support.h"

namespace reid::eval {
namespace {


TEST(Evaluator, FeatureSetsRoundTripThroughNpy) {
  test::TempDir dir;
  FeatureSet set{torch::randn({4, 3}), torch::tensor({1, 2, 3, 4}, torch::kLong), torch::tensor({0, 1, 0, 1}, torch::kLong),
                 {"a.jpg", "b.jpg", "c.jpg", "d.jpg"}};
  save_feature_set(set, dir.path().string(), "query");
  const auto back = load_feature_set((dir / "query_features.npy").string(), (dir / "query_pids.npy").string(),
                                     (dir / "query_camids.npy").string(), (dir / "query_paths.npy").string());
  EXPECT_TRUE(torch::equal(back.features, set.features));
  EXPECT_TRUE(torch::equal(back.camids, set.camids));
  EXPECT_EQ(back.paths, set.paths);
  io::write_npy((dir / "short.npy").string(), torch::zeros({3}, torch::kLong));
  EXPECT_THROW(load_feature_set((dir / "query_features.npy").string(), (dir / "short.npy").string(),
                                (dir / "query_camids.npy").string()),
               IOError);
}

TEST(Evaluator, RetrievalOptionsChangeTheRanking) {
  torch::manual_seed(3);
  const auto centres = torch::randn({10, 8}) * 3;
  const auto qp = torch::arange(10, torch::kLong), gp = torch::arange(40, torch::kLong).remainder(10);
  FeatureSet q{centres + torch::randn({10, 8}), qp, torch::zeros({10}, torch::kLong), {}};
  FeatureSet g{centres.index_select(0, gp) + torch::randn({40, 8}), gp, torch::ones({40}, torch::kLong), {}};
  RetrievalOptions plain;
  const auto a = evaluate_retrieval(q, g, plain);
  EXPECT_DOUBLE_EQ(a.mAP, evaluate_features(q.features, g.features, qp, gp, q.camids, g.camids, Metric::kEuclidean).mAP);
  RetrievalOptions cosine;
  cosine.metric = Metric::kCosine;
  RetrievalOptions normalized;
  normalized.normalize = true;
  // Euclidean on normalised features ranks like cosine.
  EXPECT_DOUBLE_EQ(evaluate_retrieval(q, g, cosine).mAP, evaluate_retrieval(q, g, normalized).mAP);
  RetrievalOptions reranked;
  reranked.rerank = true;
  reranked.rerank_options.k1 = 5;
  reranked.rerank_options.k2 = 2;
  EXPECT_NE(evaluate_retrieval(q, g, reranked).mAP, a.mAP);
}

TEST(Visualize, WritesOneRankedListPerQuery) {
  test::TempDir dir;
  const auto qrec = test::synthetic_records(0, 2, 1);
  const auto grec = test::synthetic_records(0, 3, 3);
  FeatureSet q{torch::zeros({2, 2}), torch::tensor({0, 1}, torch::kLong), torch::zeros({2}, torch::kLong), {}};
  FeatureSet g{torch::zeros({9, 2}), torch::tensor({0, 0, 0, 1, 1, 1, 2, 2, 2}, torch::kLong),
               torch::tensor({0, 1, 2, 0, 1, 2, 0, 1, 2}, torch::kLong), {}};
  for (const auto& r : *qrec) q.paths.push_back(r.path);
  for (const auto& r : *grec) g.paths.push_back(r.path);
  RankedListOptions options;
  options.topk = 4;
  const auto files = write_ranked_lists([](int64_t) { return torch::arange(9, torch::kFloat); }, q, g, {1, 0},
                                        (dir / "ranked").string(), options);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_NE(files[0].find("000_q1.png"), std::string::npos);
  const cv::Mat image = data::read_image(files[0]);
  EXPECT_EQ(image.rows, 128 + 2 * 10 + 36);
  EXPECT_EQ(image.cols, 2 * 10 + 5 * (64 + 8) + 3 * 8);
  // Query 1 (cam 0): gallery item 3 (pid 1, cam 0) is left out; the ranked tiles are items
  // 0, 1, 2 (pid 0, wrong: red borders) and 4 (pid 1, right: green border).
  const int first = 10 + 72 + 24, fourth = first + 3 * 72;
  const auto red = image.at<cv::Vec3b>(10 + 40, first - 2), green = image.at<cv::Vec3b>(10 + 40, fourth - 2);
  EXPECT_GT(red[2], 150);
  EXPECT_LT(red[1], 60);
  EXPECT_GT(green[1], 120);
  EXPECT_LT(green[2], 60);
  EvalResult result;
  result.ap = {0.5, std::nan(""), 0.25, 0.9};
  EXPECT_EQ(worst_queries(result, 2), (std::vector<int64_t>{2, 0}));
}

}  // namespace
}  // namespace reid::eval
