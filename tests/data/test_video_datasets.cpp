// Video dataset parsers on small fabricated trees of each release's layout (MARS's .mat files are
// written by the test with matio), the random person splits of iLIDS-VID / PRID2011, and the
// MARS counts on the real release when REID_DATA_ROOT holds it.
#include <gtest/gtest.h>

#include <set>

#include "reid/core/error.h"
#include "reid/data/image_io.h"
#include "reid/data/tracklets.h"
#include "reid/data/video_datasets.h"
#include "support.h"

#if REID_HAVE_MATIO
#include <matio.h>
#endif

namespace reid::data {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

#if REID_HAVE_MATIO
// A double matrix, rows given row by row, written column-major as MATLAB does.
void write_mat(const fs::path& path, const char* name, const std::vector<std::vector<double>>& rows) {
  const std::size_t n = rows.size(), m = rows.empty() ? 0 : rows[0].size();
  std::vector<double> data(n * m);
  for (std::size_t r = 0; r < n; ++r)
    for (std::size_t c = 0; c < m; ++c) data[r + n * c] = rows[r][c];
  mat_t* mat = Mat_CreateVer(path.string().c_str(), nullptr, MAT_FT_MAT5);
  ASSERT_NE(mat, nullptr);
  const size_t dims[2] = {n, m};
  matvar_t* var = Mat_VarCreate(name, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, const_cast<size_t*>(dims), data.data(), 0);
  ASSERT_EQ(Mat_VarWrite(mat, var, MAT_COMPRESSION_NONE), 0);
  Mat_VarFree(var);
  Mat_Close(mat);
}

// MARS names: <pid 4 chars>C<camera>T<tracklet 4>F<frame 3>.jpg.
std::string mars_name(const std::string& pid, int camera, int tracklet, int frame) {
  char text[64];
  std::snprintf(text, sizeof(text), "%sC%dT%04dF%03d.jpg", pid.c_str(), camera, tracklet, frame);
  return text;
}

struct MarsTree {
  TempDir dir;
  fs::path base = dir / "mars";
  std::vector<std::string> train_names, test_names;

  // A tracklet of `frames` frames appended to a name list; returns its (first, last) rows, 1-based.
  std::pair<double, double> add(std::vector<std::string>& names, const std::string& pid, int camera, int tracklet,
                                int frames) {
    const double first = static_cast<double>(names.size()) + 1;
    for (int f = 1; f <= frames; ++f) names.push_back(mars_name(pid, camera, tracklet, f));
    return {first, static_cast<double>(names.size())};
  }
  void write_names() {
    std::string train, test;
    for (const auto& n : train_names) train += n + "\n";
    for (const auto& n : test_names) test += n + "\n";
    test::write_file(base / "info/train_name.txt", train);
    test::write_file(base / "info/test_name.txt", test);
    fs::create_directories(base / "bbox_train");
    fs::create_directories(base / "bbox_test");
  }
};

TEST(MARS, ParsesTheReleaseLayoutAsTorchreidDoes) {
  MarsTree tree;
  // Training: identity 7 (camera 1, 3 frames; camera 2, 2 frames), identity 3 (camera 6), junk.
  const auto a = tree.add(tree.train_names, "0007", 1, 1, 3);
  const auto b = tree.add(tree.train_names, "0007", 2, 1, 2);
  const auto c = tree.add(tree.train_names, "0003", 6, 1, 2);
  const auto j = tree.add(tree.train_names, "00-1", 4, 1, 2);
  // Test: identity 12 in cameras 1 and 3, distractors (pid 0) and junk (-1).
  const auto q = tree.add(tree.test_names, "0012", 1, 1, 2);
  const auto g1 = tree.add(tree.test_names, "0012", 3, 1, 4);
  const auto g2 = tree.add(tree.test_names, "0000", 2, 1, 1);
  const auto g3 = tree.add(tree.test_names, "00-1", 5, 2, 2);
  const auto g4 = tree.add(tree.test_names, "0012", 1, 2, 1);
  tree.write_names();
  write_mat(tree.base / "info/tracks_train_info.mat", "track_train_info",
            {{a.first, a.second, 7, 1}, {j.first, j.second, -1, 4}, {b.first, b.second, 7, 2}, {c.first, c.second, 3, 6}});
  write_mat(tree.base / "info/tracks_test_info.mat", "track_test_info",
            {{g1.first, g1.second, 12, 3}, {q.first, q.second, 12, 1}, {g2.first, g2.second, 0, 2},
             {g3.first, g3.second, -1, 5}, {g4.first, g4.second, 12, 1}});
  write_mat(tree.base / "info/query_IDX.mat", "query_IDX", {{2}});

  DatasetOptions options;
  options.root = tree.dir.path().string();
  const auto splits = load_dataset("mars", options);
  ASSERT_EQ(splits.train.size(), 3u);  // junk dropped
  EXPECT_TRUE(is_video(splits.train));
  // Relabelled in sorted order of the dataset ids: 3 -> 0, 7 -> 1.
  EXPECT_EQ(splits.train[0].pid, 1);
  EXPECT_EQ(splits.train[0].camid, 0);
  ASSERT_EQ(splits.train[0].frames->size(), 3u);
  EXPECT_EQ((*splits.train[0].frames)[2], (tree.base / "bbox_train/0007" / mars_name("0007", 1, 1, 3)).string());
  EXPECT_EQ(splits.train[1].frames->size(), 2u);
  EXPECT_EQ(splits.train[2].pid, 0);
  EXPECT_EQ(splits.train[2].camid, 5);
  EXPECT_EQ(splits.train_ids, (std::vector<int64_t>{3, 7}));
  // Query: test row 2; gallery: the other rows, junk dropped, pid 0 kept, raw ids.
  ASSERT_EQ(splits.query.size(), 1u);
  EXPECT_EQ(splits.query[0].pid, 12);
  EXPECT_EQ(splits.query[0].camid, 0);
  EXPECT_EQ(splits.query[0].path, (tree.base / "bbox_test/0012" / mars_name("0012", 1, 1, 1)).string());
  ASSERT_EQ(splits.gallery.size(), 3u);
  EXPECT_EQ(splits.gallery[0].frames->size(), 4u);
  EXPECT_EQ(splits.gallery[1].pid, 0);
  EXPECT_EQ(splits.gallery[2].camid, 0);
  EXPECT_EQ(splits.distractor_pids, (std::vector<int64_t>{0, -1}));

  // min_frames drops short tracklets everywhere.
  options.video.min_frames = 3;
  const auto long_only = load_dataset("mars", options);
  EXPECT_EQ(long_only.train.size(), 1u);
  EXPECT_EQ(long_only.gallery.size(), 1u);

  // A row whose identity disagrees with its frames' names names the file and the row.
  write_mat(tree.base / "info/tracks_train_info.mat", "track_train_info", {{a.first, a.second, 8, 1}});
  options.video.min_frames = 0;
  auto text = message_of([&] { load_dataset("mars", options); });
  EXPECT_NE(text.find("tracks_train_info.mat"), std::string::npos) << text;
  EXPECT_NE(text.find("row 1"), std::string::npos) << text;
  // Frames beyond the name list.
  write_mat(tree.base / "info/tracks_train_info.mat", "track_train_info", {{1, 99, 7, 1}});
  text = message_of([&] { load_dataset("mars", options); });
  EXPECT_NE(text.find("outside the name list"), std::string::npos) << text;
  // Not a whole number, wrong shape, wrong variable.
  write_mat(tree.base / "info/tracks_train_info.mat", "track_train_info", {{1.5, 2, 7, 1}});
  EXPECT_THROW(load_dataset("mars", options), IOError);
  write_mat(tree.base / "info/tracks_train_info.mat", "track_train_info", {{1, 2, 7}});
  EXPECT_THROW(load_dataset("mars", options), IOError);
  write_mat(tree.base / "info/tracks_train_info.mat", "something_else", {{1, 2, 7, 1}});
  text = message_of([&] { load_dataset("mars", options); });
  EXPECT_NE(text.find("track_train_info"), std::string::npos) << text;
  // A query index outside the test tracks.
  write_mat(tree.base / "info/tracks_train_info.mat", "track_train_info", {{a.first, a.second, 7, 1}});
  write_mat(tree.base / "info/query_IDX.mat", "query_IDX", {{6}});
  text = message_of([&] { load_dataset("mars", options); });
  EXPECT_NE(text.find("query_IDX.mat"), std::string::npos) << text;
  // A truncated .mat file.
  test::write_file(tree.base / "info/query_IDX.mat", "MATLAB 5.0");
  EXPECT_THROW(load_dataset("mars", options), IOError);
}
#endif

TEST(MARS, MissingReleaseNamesTheLayout) {
  TempDir dir;
  DatasetOptions options;
  options.root = dir.path().string();
  fs::create_directories(dir / "mars/bbox_train");
  const auto text = message_of([&] { load_dataset("mars", options); });
  EXPECT_NE(text.find("tracks_train_info.mat"), std::string::npos) << text;
}

// The real MARS release, when REID_DATA_ROOT holds it: torchreid's counts.
TEST(MARS, RealReleaseCounts) {
  REID_REQUIRE_DATA();
  if (!fs::exists(fs::path(test::data_root()) / "mars" / "info"))
    GTEST_SKIP() << "MARS is not under REID_DATA_ROOT (" << test::data_root() << "/mars)";
  DatasetOptions options;
  options.root = test::data_root();
  const auto splits = load_dataset("mars", options);
  EXPECT_EQ(count_pids(splits.train), 625);
  EXPECT_EQ(splits.query.size(), 1980u);
  EXPECT_EQ(splits.gallery.size(), 9330u);
}

TEST(DukeMTMCVideoReID, ParsesBothNameFormats) {
  TempDir dir;
  const auto base = dir / "dukemtmc-vidreid/DukeMTMC-VideoReID";
  for (int f = 1; f <= 3; ++f) test::write_file(base / ("train/0005/0001/0005_C2_F000" + std::to_string(f) + "_X1.jpg"), "");
  test::write_file(base / "train/0005/0002/0005_C4_F0001_X2.jpg", "");
  test::write_file(base / "train/0002/0007/0002C8F0001X3.jpg", "");  // the older format
  test::write_file(base / "query/0011/0003/0011_C1_F0001_X4.jpg", "");
  test::write_file(base / "gallery/0011/0004/0011_C5_F0001_X5.jpg", "");
  test::write_file(base / "gallery/0011/0004/0011_C5_F0002_X5.jpg", "");
  DatasetOptions options;
  options.root = dir.path().string();
  const auto splits = load_dataset("dukemtmcvidreid", options);
  ASSERT_EQ(splits.train.size(), 3u);
  EXPECT_EQ(splits.train[0].pid, 0);  // identity 2
  EXPECT_EQ(splits.train[0].camid, 7);
  EXPECT_EQ(splits.train[1].pid, 1);
  EXPECT_EQ(splits.train[1].camid, 1);
  ASSERT_EQ(splits.train[1].frames->size(), 3u);
  EXPECT_NE((*splits.train[1].frames)[2].find("F0003"), std::string::npos);
  EXPECT_EQ(splits.train[2].camid, 3);
  EXPECT_EQ(splits.query[0].pid, 11);
  EXPECT_EQ(splits.gallery[0].camid, 4);
  EXPECT_EQ(splits.gallery[0].frames->size(), 2u);
  options.video.min_frames = 2;
  EXPECT_EQ(load_dataset("dukemtmcvidreid", options).train.size(), 1u);
  options.video.min_frames = 0;
  test::write_file(base / "train/0009/0001/bad_name.jpg", "");
  const auto text = message_of([&] { load_dataset("dukemtmcvidreid", options); });
  EXPECT_NE(text.find("bad_name.jpg"), std::string::npos) << text;
}

// A two-camera tree: persons 1..n in both cameras (person p: p + 1 frames in the first camera,
// 2 in the second) and one person only in the first.
void two_camera_tree(const fs::path& dir, const std::string& cam_a, const std::string& cam_b, const char* format,
                     int persons) {
  char name[64];
  for (int p = 1; p <= persons + 1; ++p) {
    std::snprintf(name, sizeof(name), format, p);
    for (int f = 0; f <= p; ++f) test::write_file(dir / cam_a / name / ("f" + std::to_string(f) + ".png"), "");
    if (p <= persons)
      for (int f = 0; f < 2; ++f) test::write_file(dir / cam_b / name / ("f" + std::to_string(f) + ".png"), "");
  }
}

TEST(ILIDSVID, RandomPersonSplitsWrittenOnceAndReadBack) {
  TempDir dir;
  const auto base = dir / "ilids-vid/i-LIDS-VID/sequences";
  two_camera_tree(base, "cam1", "cam2", "person%03d", 6);
  DatasetOptions options;
  options.root = dir.path().string();
  const auto splits = load_dataset("ilidsvid", options);
  // 6 persons in both cameras: 3 train (both cameras), 3 test (query camera 1, gallery camera 2).
  ASSERT_EQ(splits.train.size(), 6u);
  ASSERT_EQ(splits.query.size(), 3u);
  ASSERT_EQ(splits.gallery.size(), 3u);
  EXPECT_EQ(count_pids(splits.train), 3);
  std::set<int64_t> test_persons;
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(splits.query[i].camid, 0);
    EXPECT_EQ(splits.gallery[i].camid, 1);
    EXPECT_EQ(splits.query[i].pid, splits.gallery[i].pid);
    EXPECT_EQ(splits.query[i].frames->size(), static_cast<std::size_t>(splits.query[i].pid + 1));
    test_persons.insert(splits.query[i].pid);
  }
  for (int64_t p : splits.train_ids) EXPECT_EQ(test_persons.count(p), 0u) << p;
  EXPECT_EQ(test_persons.count(7), 0u);  // only camera 1 saw person 7
  // The splits file was written in the dataset's folder; the same split comes back from it.
  const auto file = base / "libreid_splits_10x_seed0.txt";
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(load_dataset("ilidsvid", options).query[0].path, splits.query[0].path);
  // A hand-written file is used as it is.
  test::write_file(dir / "mine.txt", "# mine\n1 2 3 | 4 5 6\n4 5 6 | 1 2 3\n");
  options.video.splits_file = (dir / "mine.txt").string();
  options.video.split_id = 1;
  const auto mine = load_dataset("ilidsvid", options);
  EXPECT_EQ(mine.train_ids, (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(mine.query[0].pid, 1);
  options.video.split_id = 2;
  EXPECT_THROW(load_dataset("ilidsvid", options), ConfigError);
  // Bad files: a person of one camera only, a person twice, no bar.
  options.video.split_id = 0;
  for (const char* bad : {"1 2 7 | 4 5 6\n", "1 2 2 | 4 5 6\n", "1 2 3 4 5 6\n", "1 x | 2\n"}) {
    test::write_file(dir / "mine.txt", std::string("# header\n") + bad);
    const auto text = message_of([&] { load_dataset("ilidsvid", options); });
    EXPECT_NE(text.find("mine.txt:2"), std::string::npos) << bad << ": " << text;
  }
  // min_frames leaves out persons with a shorter sequence in either camera (all have 2 frames in
  // camera 2): with 3, none is left.
  options.video.splits_file.clear();
  options.video.min_frames = 3;
  EXPECT_THROW(load_dataset("ilidsvid", options), IOError);
}

TEST(PRID2011, PersonsOfBothCamerasCamAQueriesCamB) {
  TempDir dir;
  const auto base = dir / "prid2011/prid_2011/multi_shot";
  two_camera_tree(base, "cam_a", "cam_b", "person_%04d", 4);
  DatasetOptions options;
  options.root = dir.path().string();
  options.video.split_seed = 3;
  options.video.num_splits = 2;
  const auto splits = load_dataset("prid2011", options);
  EXPECT_EQ(splits.train.size(), 4u);
  EXPECT_EQ(splits.query.size(), 2u);
  EXPECT_TRUE(fs::exists(base / "libreid_splits_2x_seed3.txt"));
  EXPECT_EQ(splits.query[0].camid, 0);
  EXPECT_EQ(splits.gallery[0].camid, 1);
  test::write_file(base / "cam_a/someone/f.png", "");
  const auto text = message_of([&] { load_dataset("prid2011", options); });
  EXPECT_NE(text.find("someone"), std::string::npos) << text;
}

TEST(PersonSplits, SeededHalvesThatCoverEveryPerson) {
  const std::vector<int64_t> persons = {9, 1, 5, 3, 7, 2, 8};
  const auto a = random_person_splits(persons, 10, 0);
  const auto b = random_person_splits(persons, 10, 0);
  const auto c = random_person_splits(persons, 10, 1);
  ASSERT_EQ(a.size(), 10u);
  std::set<std::vector<int64_t>> distinct;
  for (std::size_t s = 0; s < a.size(); ++s) {
    EXPECT_EQ(a[s].train, b[s].train);
    EXPECT_EQ(a[s].train.size(), 3u);
    EXPECT_EQ(a[s].test.size(), 4u);
    std::vector<int64_t> all = a[s].train;
    all.insert(all.end(), a[s].test.begin(), a[s].test.end());
    std::sort(all.begin(), all.end());
    EXPECT_EQ(all, (std::vector<int64_t>{1, 2, 3, 5, 7, 8, 9}));
    EXPECT_TRUE(std::is_sorted(a[s].test.begin(), a[s].test.end()));
    distinct.insert(a[s].train);
  }
  EXPECT_GT(distinct.size(), 3u);  // the splits differ from each other
  bool differs = false;
  for (std::size_t s = 0; s < a.size(); ++s) differs = differs || a[s].train != c[s].train;
  EXPECT_TRUE(differs);
  // Round trip through the file.
  TempDir dir;
  write_person_splits((dir / "s.txt").string(), a, "test");
  const auto back = read_person_splits((dir / "s.txt").string(), persons);
  ASSERT_EQ(back.size(), a.size());
  for (std::size_t s = 0; s < a.size(); ++s) EXPECT_EQ(back[s].test, a[s].test);
}

TEST(CustomVideo, FolderAndFrameLines) {
  TempDir dir;
  for (const char* f : {"t1/b.jpg", "t1/a.jpg", "frames/x1.jpg", "frames/x2.jpg", "frames/x3.jpg", "t2/a.png"})
    test::write_file(dir / f, "");
  test::write_file(dir / "train.txt",
                   "# tracklets\nt1 4 0\nframes/x2.jpg 9 1 walk\nframes/x1.jpg 9 1 walk\nframes/x3.jpg 4 2 other\n");
  test::write_file(dir / "query.txt", "t2 3 0\n");
  test::write_file(dir / "gallery.txt", "t1 3 1\n");
  DatasetOptions options;
  options.root = dir.path().string();
  options.custom.train_list = (dir / "train.txt").string();
  options.custom.query_list = (dir / "query.txt").string();
  options.custom.gallery_list = (dir / "gallery.txt").string();
  const auto splits = load_dataset("custom_video", options);
  ASSERT_EQ(splits.train.size(), 3u);
  EXPECT_EQ(*splits.train[0].frames, (std::vector<std::string>{(dir / "t1/a.jpg").string(), (dir / "t1/b.jpg").string()}));
  EXPECT_EQ(splits.train[0].pid, 0);  // 4 -> 0, 9 -> 1
  EXPECT_EQ(splits.train[1].pid, 1);
  EXPECT_EQ(splits.train[1].camid, 1);
  // Frame lines keep their order (the list is the temporal order).
  EXPECT_EQ(*splits.train[1].frames,
            (std::vector<std::string>{(dir / "frames/x2.jpg").string(), (dir / "frames/x1.jpg").string()}));
  EXPECT_EQ(splits.query[0].frames->size(), 1u);
  // A tracklet that changes identity, a missing folder.
  test::write_file(dir / "train.txt", "frames/x1.jpg 9 1 walk\nframes/x2.jpg 8 1 walk\n");
  auto text = message_of([&] { load_dataset("custom_video", options); });
  EXPECT_NE(text.find("train.txt:2"), std::string::npos) << text;
  test::write_file(dir / "train.txt", "nowhere 9 1\n");
  text = message_of([&] { load_dataset("custom_video", options); });
  EXPECT_NE(text.find("train.txt:1"), std::string::npos) << text;
  EXPECT_NE(text.find("nowhere"), std::string::npos) << text;
}

TEST(CustomVideo, BadFramesFoundBeforeTrainingAndSkippedFrameByFrameWhenAsked) {
  TempDir dir;
  test::write_image(dir / "a/1.jpg");
  test::write_file(dir / "a/2.jpg", "not a jpeg");
  test::write_image(dir / "a/3.jpg");
  test::write_file(dir / "b/1.jpg", "truncated");
  test::write_image(dir / "c/1.jpg");
  test::write_file(dir / "train.txt", "a 1 0\nb 2 0\nc 3 1\n");
  DatasetOptions options;
  options.root = dir.path().string();
  options.custom.train_list = (dir / "train.txt").string();
  auto splits = load_dataset("custom_video", options);
  ASSERT_EQ(splits.train.size(), 3u);
  const auto text = message_of([&] { check_dataset_images(splits, true, false, kDefaultMaxImagePixels, false); });
  EXPECT_NE(text.find("a/2.jpg"), std::string::npos) << text;
  EXPECT_NE(text.find("2 of 5 training images"), std::string::npos) << text;
  EXPECT_EQ(check_dataset_images(splits, true, false, kDefaultMaxImagePixels, true), 2);
  // Tracklet a keeps frames 1 and 3; b (no good frame) is left out and the labels renumbered.
  ASSERT_EQ(splits.train.size(), 2u);
  EXPECT_EQ(*splits.train[0].frames,
            (std::vector<std::string>{(dir / "a/1.jpg").string(), (dir / "a/3.jpg").string()}));
  EXPECT_EQ(splits.train[1].pid, 1);
  EXPECT_EQ(splits.train_ids, (std::vector<int64_t>{1, 3}));
}

}  // namespace
}  // namespace reid::data
