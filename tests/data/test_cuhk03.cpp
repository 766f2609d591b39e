// CUHK03 in both releases. The .mat files are generated with matio itself: a v7.3 (HDF5)
// cuhk-03.mat with cells of images and the classic test sets, and a v5 new-protocol config.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "reid/core/error.h"
#include "reid/data/cuhk03.h"
#include "support.h"

#if REID_HAVE_MATIO
#include <matio.h>
#endif

namespace reid::data {
namespace {

using test::TempDir;

TEST(CUHK03, NpFolderRelease) {
  TempDir dir;
  const auto base = dir / "cuhk03-np/labeled";
  test::write_image(base / "bounding_box_train/0001_c1_1.png");
  test::write_image(base / "bounding_box_train/0001_c2_2.png");
  test::write_image(base / "bounding_box_train/0009_c2_1.png");
  test::write_image(base / "query/0004_c1_1.png");
  test::write_image(base / "bounding_box_test/0004_c2_2.png");
  DatasetOptions options;
  options.root = dir.path().string();
  options.cuhk03.labeled = true;
  const auto splits = load_dataset("cuhk03", options);
  EXPECT_EQ(splits.train.size(), 3u);
  EXPECT_EQ(splits.train[2].pid, 1);
  EXPECT_EQ(splits.train[1].camid, 1);
  EXPECT_EQ(splits.query[0].pid, 4);
  options.cuhk03.labeled = false;  // detected/ is missing
  EXPECT_THROW(load_dataset("cuhk03", options), IOError);
}

TEST(CUHK03, MissingReleaseNamesBothLayouts) {
  TempDir dir;
  DatasetOptions options;
  options.root = dir.path().string();
  try {
    load_dataset("cuhk03", options);
    FAIL();
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("cuhk-03.mat"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("cuhk03-np"), std::string::npos);
  }
}

#if REID_HAVE_MATIO

matvar_t* image_var(int pair, int pid, int slot) {
  // 6 x 4 RGB image; pixel (h, w) channel c holds 10 * c + h + pair + pid + slot (as MATLAB's
  // column-major H x W x 3 array).
  const size_t dims[3] = {6, 4, 3};
  std::vector<uint8_t> data(6 * 4 * 3);
  for (size_t c = 0; c < 3; ++c)
    for (size_t w = 0; w < 4; ++w)
      for (size_t h = 0; h < 6; ++h) data[h + 6 * (w + 4 * c)] = static_cast<uint8_t>(10 * c + h + pair + pid + slot);
  return Mat_VarCreate(nullptr, MAT_C_UINT8, MAT_T_UINT8, 3, const_cast<size_t*>(dims), data.data(), 0);
}

matvar_t* empty_var() {
  const size_t dims[2] = {0, 0};
  return Mat_VarCreate(nullptr, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, const_cast<size_t*>(dims), nullptr, 0);
}

matvar_t* matrix(const char* name, const std::vector<double>& values, size_t rows, size_t cols) {
  const size_t dims[2] = {rows, cols};
  return Mat_VarCreate(name, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, const_cast<size_t*>(dims),
                       const_cast<double*>(values.data()), 0);
}

// cuhk-03.mat with 2 camera pairs (3 and 2 identities); pair 1 identity 2 has 6 images.
void write_release(const test::fs::path& path) {
  test::fs::create_directories(path.parent_path());
  mat_t* mat = Mat_CreateVer(path.string().c_str(), nullptr, MAT_FT_MAT73);
  ASSERT_NE(mat, nullptr);
  for (const char* kind : {"detected", "labeled"}) {
    const size_t outer_dims[2] = {2, 1};
    matvar_t* pairs = Mat_VarCreate(kind, MAT_C_CELL, MAT_T_CELL, 2, const_cast<size_t*>(outer_dims), nullptr, 0);
    for (int pair = 0; pair < 2; ++pair) {
      const size_t pids = pair == 0 ? 3 : 2;
      const size_t dims[2] = {pids, 10};
      matvar_t* cell = Mat_VarCreate(nullptr, MAT_C_CELL, MAT_T_CELL, 2, const_cast<size_t*>(dims), nullptr, 0);
      for (size_t pid = 0; pid < pids; ++pid)
        for (size_t slot = 0; slot < 10; ++slot) {
          const bool missing = pair == 0 && pid == 1 && slot >= 6;
          Mat_VarSetCell(cell, static_cast<int>(pid + pids * slot),
                         missing ? empty_var() : image_var(pair + 1, static_cast<int>(pid + 1), static_cast<int>(slot + 1)));
        }
      Mat_VarSetCell(pairs, pair, cell);
    }
    ASSERT_EQ(Mat_VarWrite(mat, pairs, MAT_COMPRESSION_NONE), 0);
    Mat_VarFree(pairs);
  }
  const size_t set_dims[2] = {20, 1};
  matvar_t* sets = Mat_VarCreate("testsets", MAT_C_CELL, MAT_T_CELL, 2, const_cast<size_t*>(set_dims), nullptr, 0);
  for (int i = 0; i < 20; ++i) {
    // Split 0 tests (pair 1, pid 2) and (pair 2, pid 1); the others (pair 1, pid 1) only.
    std::vector<double> values = i == 0 ? std::vector<double>{1, 2, 2, 1} : std::vector<double>{1, 1};
    Mat_VarSetCell(sets, i, matrix(nullptr, values, values.size() / 2, 2));
  }
  ASSERT_EQ(Mat_VarWrite(mat, sets, MAT_COMPRESSION_NONE), 0);
  Mat_VarFree(sets);
  Mat_Close(mat);
}

// New-protocol config over the 46 images: train = pair 1 pids 1-2, test = the rest.
void write_config(const test::fs::path& path) {
  std::vector<std::string> files;
  std::vector<double> labels, train, query, gallery;
  for (int pair = 1; pair <= 2; ++pair)
    for (int pid = 1; pid <= (pair == 1 ? 3 : 2); ++pid)
      for (int slot = 1; slot <= 10; ++slot) {
        if (pair == 1 && pid == 2 && slot > 6) continue;
        char name[32];
        std::snprintf(name, sizeof(name), "%d_%03d_%d_%02d.png", pair, pid, slot <= 5 ? 1 : 2, slot);
        files.push_back(name);
        labels.push_back(pair * 100 + pid);
        const double index = static_cast<double>(files.size());
        if (pair == 1 && pid <= 2) train.push_back(index);
        else if (slot == 1 || slot == 6) query.push_back(index);
        else gallery.push_back(index);
      }
  mat_t* mat = Mat_CreateVer(path.string().c_str(), nullptr, MAT_FT_MAT5);
  ASSERT_NE(mat, nullptr);
  for (auto* var : {matrix("train_idx", train, train.size(), 1), matrix("query_idx", query, query.size(), 1),
                    matrix("gallery_idx", gallery, gallery.size(), 1), matrix("labels", labels, labels.size(), 1)}) {
    Mat_VarWrite(mat, var, MAT_COMPRESSION_NONE);
    Mat_VarFree(var);
  }
  const size_t dims[2] = {files.size(), 1};
  matvar_t* list = Mat_VarCreate("filelist", MAT_C_CELL, MAT_T_CELL, 2, const_cast<size_t*>(dims), nullptr, 0);
  for (size_t i = 0; i < files.size(); ++i) {
    const size_t sdims[2] = {1, files[i].size()};
    Mat_VarSetCell(list, static_cast<int>(i),
                   Mat_VarCreate(nullptr, MAT_C_CHAR, MAT_T_UINT8, 2, const_cast<size_t*>(sdims),
                                 const_cast<char*>(files[i].data()), 0));
  }
  Mat_VarWrite(mat, list, MAT_COMPRESSION_NONE);
  Mat_VarFree(list);
  Mat_Close(mat);
}

TEST(CUHK03Mat, ConvertsImagesOnceWithTheRightOrientation) {
  TempDir dir;
  const auto mat = dir / "cuhk03/cuhk03_release/cuhk-03.mat";
  write_release(mat);
  const auto images = dir / "cuhk03/images_detected";
  const auto identities = extract_cuhk03_images(mat.string(), "detected", images.string());
  ASSERT_EQ(identities.size(), 5u);
  EXPECT_EQ(identities[1].paths.size(), 6u) << "empty cells skipped";
  EXPECT_EQ(identities[0].paths.size(), 10u);
  EXPECT_EQ(test::fs::path(identities[0].paths[5]).filename(), "1_001_2_06.png") << "slots 6-10 are view 2";
  const cv::Mat png = cv::imread(identities[3].paths[2]);  // pair 2, pid 1, slot 3
  ASSERT_EQ(png.rows, 6);
  ASSERT_EQ(png.cols, 4);
  // Pixel (h = 4, w = 1): R = 0 + 4 + 2 + 1 + 3, G = 10 + ..., B = 20 + ...; OpenCV stores BGR.
  const auto pixel = png.at<cv::Vec3b>(4, 1);
  EXPECT_EQ(pixel[2], 10);
  EXPECT_EQ(pixel[1], 20);
  EXPECT_EQ(pixel[0], 30);
  // Second call: served from the converted folder even without the .mat file.
  test::fs::remove(mat);
  const auto again = extract_cuhk03_images(mat.string(), "detected", images.string());
  ASSERT_EQ(again.size(), 5u);
  EXPECT_EQ(again[1].paths, identities[1].paths);
}

TEST(CUHK03Mat, ClassicSplit) {
  TempDir dir;
  write_release(dir / "cuhk03/cuhk03_release/cuhk-03.mat");
  DatasetOptions options;
  options.root = dir.path().string();
  options.cuhk03.classic_split = true;
  options.cuhk03.split_id = 0;
  const auto splits = load_dataset("cuhk03", options);
  EXPECT_EQ(splits.query.size(), 6u + 10u) << "test ids (1,2) and (2,1)";
  EXPECT_EQ(splits.gallery.size(), splits.query.size()) << "query = gallery";
  EXPECT_EQ(count_pids(splits.train), 3);
  EXPECT_EQ(splits.train.size(), 10u + 10u + 10u);
  EXPECT_EQ(splits.query.front().camid, 0);
  EXPECT_EQ(splits.query.back().camid, 1);
  options.cuhk03.split_id = 3;
  EXPECT_EQ(count_pids(load_dataset("cuhk03", options).query), 1);
  EXPECT_EQ(read_cuhk03_testsets((dir / "cuhk03/cuhk03_release/cuhk-03.mat").string()).size(), 20u);
}

TEST(CUHK03Mat, NewProtocolFromTheConfigFile) {
  TempDir dir;
  write_release(dir / "cuhk03/cuhk03_release/cuhk-03.mat");
  write_config(dir / "cuhk03/cuhk03_new_protocol_config_labeled.mat");
  DatasetOptions options;
  options.root = dir.path().string();
  options.cuhk03.labeled = true;
  const auto splits = load_dataset("cuhk03", options);
  EXPECT_EQ(splits.train.size(), 16u);
  EXPECT_EQ(count_pids(splits.train), 2);
  EXPECT_EQ(splits.train.back().pid, 1);
  EXPECT_EQ(splits.query.size(), 6u) << "3 test ids x 2 views";
  EXPECT_EQ(splits.gallery.size(), 24u);
  EXPECT_EQ(splits.query[0].pid, 103) << "raw label from the config";
  EXPECT_NE(splits.query[0].path.find("images_labeled/1_003_1_01.png"), std::string::npos);
  EXPECT_TRUE(test::fs::exists(splits.query[0].path));
}

TEST(CUHK03Mat, TruncatedMatFileNamesThePath) {
  TempDir dir;
  const auto mat = dir / "cuhk03/cuhk03_release/cuhk-03.mat";
  test::write_file(mat, "MATLAB 7.3 MAT-file, not really");
  try {
    extract_cuhk03_images(mat.string(), "detected", (dir / "out").string());
    FAIL();
  } catch (const IOError& e) {
    EXPECT_EQ(e.path(), mat.string());
  }
}

#else
TEST(CUHK03Mat, NeedsMatio) { GTEST_SKIP() << "built without matio: the .mat release is not supported"; }
#endif

}  // namespace
}  // namespace reid::data
