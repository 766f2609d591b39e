#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "reid/data/image_io.h"
#include "reid/data/synthetic.h"

namespace reid::data {
namespace {

double difference(const cv::Mat& a, const cv::Mat& b) { return cv::norm(a, b, cv::NORM_L1) / a.total(); }

TEST(Synthetic, RenderingIsAPureFunctionOfTheAddress) {
  const SyntheticImage spec{3, 128, 64, 7, 2, 1};
  const cv::Mat a = render_synthetic(spec);
  const cv::Mat b = render_synthetic(spec);
  ASSERT_EQ(a.rows, 128);
  ASSERT_EQ(a.cols, 64);
  ASSERT_EQ(a.type(), CV_8UC3);
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0.0);
  EXPECT_GT(difference(a, render_synthetic({3, 128, 64, 7, 2, 2})), 0.0) << "another image of the same person";
  EXPECT_GT(difference(a, render_synthetic({4, 128, 64, 7, 2, 1})), 0.0) << "another seed";
  const cv::Mat big = render_synthetic({3, 256, 128, 7, 2, 1});
  EXPECT_EQ(big.rows, 256);
}

TEST(Synthetic, PathsRoundTripAndReadImageRendersThem) {
  const SyntheticImage spec{1, 96, 48, 12, 3, 4};
  const std::string path = synthetic_path(spec);
  EXPECT_EQ(path, "synthetic://1/96x48/12/3/4");
  SyntheticImage parsed;
  ASSERT_TRUE(parse_synthetic_path(path, parsed));
  EXPECT_EQ(parsed.pid, 12);
  EXPECT_EQ(parsed.width, 48);
  EXPECT_FALSE(parse_synthetic_path("synthetic://1/96x48/12/3", parsed));
  EXPECT_FALSE(parse_synthetic_path("/data/0001_c1.jpg", parsed));
  EXPECT_EQ(cv::norm(read_image(path), render_synthetic(spec), cv::NORM_INF), 0.0);
}

TEST(Synthetic, SplitsAreDisjointAndQueriesHaveMatchesInOtherCameras) {
  DatasetOptions options;
  options.synthetic.train_ids = 10;
  options.synthetic.test_ids = 5;
  options.synthetic.cameras = 3;
  options.synthetic.images_per_camera = 4;
  const auto splits = load_dataset("synthetic", options);
  EXPECT_EQ(splits.train.size(), 10u * 3 * 4);
  EXPECT_EQ(count_pids(splits.train), 10);
  EXPECT_EQ(splits.query.size(), 5u * 3) << "one query per test identity and camera";
  EXPECT_EQ(splits.gallery.size(), 5u * 3 * 3);
  EXPECT_EQ(count_cameras(splits.gallery), 3);
  for (const auto& q : splits.query) EXPECT_GE(q.pid, 10) << "test identities are unseen in training";
}

TEST(Synthetic, IdentitiesLookMoreAlikeThanStrangers) {
  // Same person across cameras should be closer (on average) than different people in the same
  // camera: the dataset carries identity information for a model to learn.
  double same = 0, other = 0;
  int n = 0;
  for (int pid = 0; pid < 20; ++pid) {
    cv::Mat a, b, c;
    cv::resize(render_synthetic({0, 128, 64, pid, 0, 0}), a, {8, 16}, 0, 0, cv::INTER_AREA);
    cv::resize(render_synthetic({0, 128, 64, pid, 0, 1}), b, {8, 16}, 0, 0, cv::INTER_AREA);
    cv::resize(render_synthetic({0, 128, 64, pid + 100, 0, 0}), c, {8, 16}, 0, 0, cv::INTER_AREA);
    same += difference(a, b);
    other += difference(a, c);
    ++n;
  }
  EXPECT_LT(same / n, other / n);
}

}  // namespace
}  // namespace reid::data
