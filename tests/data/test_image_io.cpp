#include <gtest/gtest.h>

#include "reid/core/error.h"
#include "reid/data/image_io.h"
#include "support.h"

namespace reid::data {
namespace {

std::string error_of(const std::string& path) {
  try {
    read_image(path);
  } catch (const IOError& e) {
    EXPECT_EQ(e.path(), path);
    return e.what();
  }
  return "";
}

TEST(ImageIO, ReadsJpegAndPngAsBgr) {
  test::TempDir dir;
  test::write_image(dir / "a.jpg", 20, 10);
  test::write_image(dir / "b.png", 7, 5);
  const cv::Mat a = read_image((dir / "a.jpg").string());
  EXPECT_EQ(a.rows, 20);
  EXPECT_EQ(a.cols, 10);
  EXPECT_EQ(a.type(), CV_8UC3);
  EXPECT_EQ(read_image((dir / "b.png").string()).cols, 5);
}

TEST(ImageIO, BadFilesFailWithTheirPath) {
  test::TempDir dir;
  EXPECT_NE(error_of((dir / "none.jpg").string()).find("cannot open"), std::string::npos);
  test::write_file(dir / "empty.jpg", "");
  EXPECT_NE(error_of((dir / "empty.jpg").string()).find("empty"), std::string::npos);
  test::write_file(dir / "text.jpg", "hello, I am not an image");
  EXPECT_NE(error_of((dir / "text.jpg").string()).find("not an image LibReID reads"), std::string::npos);
  test::write_image(dir / "full.jpg", 64, 32);
  const std::string jpeg = test::read_file(dir / "full.jpg");
  test::write_file(dir / "cut.jpg", jpeg.substr(0, jpeg.size() / 2));
  EXPECT_NE(error_of((dir / "cut.jpg").string()).find("truncated JPEG"), std::string::npos);
  test::write_image(dir / "full.png", 64, 32);
  const std::string png = test::read_file(dir / "full.png");
  test::write_file(dir / "cut.png", png.substr(0, png.size() - 30));
  EXPECT_NE(error_of((dir / "cut.png").string()).find("truncated PNG"), std::string::npos);
}

}  // namespace
}  // namespace reid::data
