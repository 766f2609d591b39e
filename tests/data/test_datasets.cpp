#include <gtest/gtest.h>

#include <map>
#include <set>

#include "reid/core/error.h"
#include "reid/data/datasets.h"
#include "support.h"

namespace reid::data {
namespace {

using test::TempDir;
using test::write_file;
using test::write_image;

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A small Market-1501 tree: ids 2 and 7 for training, 3 and 5 for testing, junk and distractors.
void make_market(const test::fs::path& root) {
  const auto base = root / "market1501" / "Market-1501-v15.09.15";
  for (const char* name : {"0002_c1s1_000451_03.jpg", "0002_c2s1_000100_01.jpg", "0007_c3s2_000010_01.jpg",
                           "0007_c3s2_000020_01.jpg", "0007_c6s1_000001_02.jpg", "-1_c1s1_000001_00.jpg"})
    write_image(base / "bounding_box_train" / name);
  for (const char* name : {"0003_c1s1_000001_00.jpg", "0005_c4s1_000001_00.jpg"}) write_image(base / "query" / name);
  for (const char* name : {"0003_c2s1_000002_00.jpg", "0005_c5s1_000003_00.jpg", "0000_c1s1_000004_00.jpg",
                           "0000_c3s1_000005_00.jpg", "-1_c2s1_000006_00.jpg"})
    write_image(base / "bounding_box_test" / name);
  write_file(base / "bounding_box_test" / "Thumbs.db", "not an image");
}

TEST(Market1501, ParsesIdsCamerasJunkAndDistractors) {
  TempDir dir;
  make_market(dir.path());
  DatasetOptions options;
  options.root = dir.path().string();
  const auto splits = load_dataset("market1501", options);
  ASSERT_EQ(splits.train.size(), 5u) << "junk (-1) dropped";
  // Labels relabelled in sorted order of raw ids: 2 -> 0, 7 -> 1.
  EXPECT_EQ(splits.train[0].pid, 0);
  EXPECT_EQ(splits.train[2].pid, 1);
  EXPECT_EQ(splits.train[4].camid, 5) << "c6 -> camid 5";
  EXPECT_EQ(splits.query.size(), 2u);
  EXPECT_EQ(splits.query[1].pid, 5) << "query keeps raw ids";
  EXPECT_EQ(splits.gallery.size(), 4u) << "junk dropped, distractors (pid 0) kept";
  EXPECT_EQ(std::count_if(splits.gallery.begin(), splits.gallery.end(), [](const auto& r) { return r.pid == 0; }), 2);
  EXPECT_EQ(splits.distractor_pids, (std::vector<int64_t>{0, -1}));
  const std::string table = statistics_table(splits);
  EXPECT_NE(table.find("train    |       2 |        5 |       4"), std::string::npos) << table;
}

TEST(Market1501, CombineAllAddsTestIdsWithoutDistractors) {
  TempDir dir;
  make_market(dir.path());
  DatasetOptions options;
  options.root = dir.path().string();
  options.combine_all = true;
  const auto splits = load_dataset("market1501", options);
  EXPECT_EQ(splits.train.size(), 5u + 2u + 2u);
  EXPECT_EQ(count_pids(splits.train), 4) << "ids 2, 7 then 3, 5 (offset, relabelled)";
  std::set<int64_t> labels;
  for (const auto& r : splits.train) labels.insert(r.pid);
  EXPECT_EQ(labels, (std::set<int64_t>{0, 1, 2, 3}));
}

TEST(Market1501, MissingFolderNamesThePathAndTheLayout) {
  TempDir dir;
  DatasetOptions options;
  options.root = dir.path().string();
  const std::string message = error_of([&] { load_dataset("market1501", options); });
  EXPECT_NE(message.find(dir.path().string()), std::string::npos) << message;
  EXPECT_NE(message.find("bounding_box_train,query,bounding_box_test"), std::string::npos) << message;
  // A layout missing only the query folder names that folder.
  make_market(dir.path());
  test::fs::remove_all(dir / "market1501/Market-1501-v15.09.15/query");
  const std::string missing = error_of([&] { load_dataset("market1501", options); });
  EXPECT_NE(missing.find("Market-1501-v15.09.15/query"), std::string::npos) << missing;
}

TEST(Market1501, UnparsableNameAndBadCameraNameTheFile) {
  TempDir dir;
  make_market(dir.path());
  DatasetOptions options;
  options.root = dir.path().string();
  const auto bad = dir / "market1501/Market-1501-v15.09.15/query/person.jpg";
  write_image(bad);
  const std::string message = error_of([&] { load_dataset("market1501", options); });
  EXPECT_NE(message.find(bad.string()), std::string::npos) << message;
  EXPECT_NE(message.find("cannot parse the file name"), std::string::npos);
  test::fs::remove(bad);
  const auto cam = dir / "market1501/Market-1501-v15.09.15/query/0003_c9s1_000001_00.jpg";
  write_image(cam);
  EXPECT_NE(error_of([&] { load_dataset("market1501", options); }).find("camera 9 out of range 1-6"), std::string::npos);
}

TEST(DukeMTMC, ParsesEightCameras) {
  TempDir dir;
  const auto base = dir / "dukemtmc-reid/DukeMTMC-reID";
  write_image(base / "bounding_box_train/0001_c2_f0046182.jpg");
  write_image(base / "bounding_box_train/0001_c8_f0046999.jpg");
  write_image(base / "query/0005_c1_f0000001.jpg");
  write_image(base / "bounding_box_test/0005_c7_f0000002.jpg");
  DatasetOptions options;
  options.root = dir.path().string();
  const auto splits = load_dataset("dukemtmcreid", options);
  EXPECT_EQ(splits.train.size(), 2u);
  EXPECT_EQ(splits.train[1].camid, 7);
  EXPECT_EQ(splits.gallery[0].camid, 6);
}

void make_msmt(const test::fs::path& root, const std::string& version, const std::string& train, const std::string& test) {
  const auto base = root / "msmt17" / version;
  write_file(base / "list_train.txt", "0000/0000_000_01_0303morning_0015_0.jpg 0\n0000/0000_001_05_0303morning_0016_0.jpg 0\n"
                                      "0002/0002_000_15_0303noon_0001_1.jpg 2\n");
  write_file(base / "list_val.txt", "0001/0001_000_03_0303morning_0020_0.jpg 1\n");
  write_file(base / "list_query.txt", "0000/0000_000_02_0303morning_0001_0.jpg 0\n");
  write_file(base / "list_gallery.txt", "0000/0000_001_07_0303morning_0002_0.jpg 0\n0001/0001_000_09_0303morning_0003_0.jpg 1\n");
  test::fs::create_directories(base / train);
  test::fs::create_directories(base / test);
}

TEST(MSMT17, DetectsV1AndV2AndReadsCamerasFromNames) {
  for (auto version : {std::make_tuple("MSMT17_V1", "train", "test"),
                       std::make_tuple("MSMT17_V2", "mask_train_v2", "mask_test_v2")}) {
    TempDir dir;
    make_msmt(dir.path(), std::get<0>(version), std::get<1>(version), std::get<2>(version));
    DatasetOptions options;
    options.root = dir.path().string();
    const auto splits = load_dataset("msmt17", options);
    ASSERT_EQ(splits.train.size(), 3u);
    EXPECT_EQ(splits.train[0].camid, 0);
    EXPECT_EQ(splits.train[1].camid, 4);
    EXPECT_EQ(splits.train[2].camid, 14);
    EXPECT_EQ(splits.train[2].pid, 2) << "train and val share one label space: 0, 1 (val), 2";
    EXPECT_EQ(splits.val[0].pid, 1);
    EXPECT_NE(splits.train[0].path.find(std::string(std::get<0>(version)) + "/" + std::get<1>(version) + "/0000/"),
              std::string::npos);
    EXPECT_EQ(splits.val.size(), 1u);
    EXPECT_EQ(splits.query[0].pid, 0) << "query/gallery ids restart at 0";
    EXPECT_EQ(splits.gallery[1].camid, 8);
    EXPECT_NE(splits.gallery[0].path.find(std::get<2>(version)), std::string::npos);

    options.combine_all = true;
    const auto all = load_dataset("msmt17", options);
    EXPECT_EQ(all.train.size(), 3u + 1u + 1u + 2u) << "train + val + query + gallery";
    EXPECT_EQ(count_pids(all.train), 3 + 2) << "train/val ids 0,1,2 then test ids 0,1 offset";
  }
}

TEST(MSMT17, BadListLineNamesFileAndLine) {
  TempDir dir;
  make_msmt(dir.path(), "MSMT17_V1", "train", "test");
  write_file(dir / "msmt17/MSMT17_V1/list_query.txt", "0000/0000_000_02_0303morning_0001_0.jpg 0\nbroken\n");
  DatasetOptions options;
  options.root = dir.path().string();
  const std::string message = error_of([&] { load_dataset("msmt17", options); });
  EXPECT_NE(message.find("list_query.txt:2"), std::string::npos) << message;
}

TEST(CustomDataset, ReadsListFilesWithCommentsAndSpacesInPaths) {
  TempDir dir;
  write_image(dir / "imgs/a b/1.png");
  write_image(dir / "imgs/2.png");
  write_image(dir / "imgs/3.png");
  write_file(dir / "train.txt", "# path pid camid\na b/1.png 10 0\n\n2.png\t20 1  # trailing comment\n");
  write_file(dir / "query.txt", "3.png 5 0\n");
  write_file(dir / "gallery.txt", "2.png 5 1\n");
  DatasetOptions options;
  options.custom.image_root = (dir / "imgs").string();
  options.custom.train_list = (dir / "train.txt").string();
  options.custom.query_list = (dir / "query.txt").string();
  options.custom.gallery_list = (dir / "gallery.txt").string();
  const auto splits = load_dataset("custom", options);
  ASSERT_EQ(splits.train.size(), 2u);
  EXPECT_EQ(splits.train[0].path, (dir / "imgs/a b/1.png").string());
  EXPECT_EQ(splits.train[1].pid, 1);
  EXPECT_EQ(splits.train[1].camid, 1);
  EXPECT_EQ(splits.query[0].pid, 5);
}

TEST(CustomDataset, BadLinesAndMissingImagesNameFileAndLine) {
  TempDir dir;
  write_image(dir / "1.png");
  DatasetOptions options;
  options.custom.image_root = dir.path().string();
  options.custom.train_list = (dir / "train.txt").string();
  write_file(dir / "train.txt", "1.png 1 0\n1.png x 0\n");
  EXPECT_NE(error_of([&] { load_dataset("custom", options); }).find("train.txt:2: pid and camid must be integers"),
            std::string::npos);
  write_file(dir / "train.txt", "1.png 1\n");
  EXPECT_NE(error_of([&] { load_dataset("custom", options); }).find("train.txt:1: expected '<relative path> <pid> <camid>'"),
            std::string::npos);
  write_file(dir / "train.txt", "missing.png 1 0\n");
  EXPECT_NE(error_of([&] { load_dataset("custom", options); }).find("image not found"), std::string::npos);
  options.custom.train_list = (dir / "none.txt").string();
  EXPECT_NE(error_of([&] { load_dataset("custom", options); }).find("none.txt"), std::string::npos);
}

TEST(Datasets, EmptySplitIsAnError) {
  DatasetSplits splits;
  splits.name = "x";
  splits.train.push_back({"a", 0, 0});
  EXPECT_NO_THROW(check_not_empty(splits, true, false));
  EXPECT_NE(error_of([&] { check_not_empty(splits, true, true); }).find("dataset x: the query split is empty"),
            std::string::npos);
}

TEST(Datasets, SeveralSourcesGetPidAndCameraOffsets) {
  DatasetSplits a, b;
  a.train = {{"a0", 0, 0}, {"a1", 1, 5}};
  b.train = {{"b0", 7, 0}, {"b1", 3, 1}};
  const auto merged = merge_training_sets({a, b});
  ASSERT_EQ(merged.size(), 4u);
  EXPECT_EQ(merged[2].pid, 2 + 1) << "b's 7 relabels to 1, offset by a's 2 ids";
  EXPECT_EQ(merged[3].pid, 2 + 0);
  EXPECT_EQ(merged[2].camid, 6) << "b's cameras start after a's camera 5";
}

TEST(Datasets, RegistryListsEveryDataset) {
  EXPECT_EQ(builtin_datasets().names(),
            (std::vector<std::string>{"cuhk03", "custom", "custom_video", "dukemtmcreid", "dukemtmcvidreid", "ilidsvid",
                                      "market1501", "mars", "msmt17", "prid2011", "synthetic", "synthetic_video"}));
  EXPECT_NE(error_of([] { load_dataset("market150", DatasetOptions()); }).find("did you mean 'market1501'"), std::string::npos);
}

TEST(Market1501RealData, CountsOfTheSharedSplit) {
  REID_REQUIRE_DATA();
  DatasetOptions options;
  options.root = test::data_root();
  const auto splits = load_dataset("market1501", options);
  EXPECT_EQ(count_pids(splits.train), 376);
  EXPECT_EQ(splits.train.size(), 6338u);
  EXPECT_EQ(splits.query.size(), 1635u);
  EXPECT_EQ(splits.gallery.size(), 4963u);
  EXPECT_EQ(count_pids(splits.query), 375);
  EXPECT_EQ(count_cameras(splits.train), 6);
}

}  // namespace
}  // namespace reid::data

namespace reid::data {

TEST(ImageList, PathsAloneOrWithPidAndCamid) {
  TempDir dir;
  write_file(dir / "list.txt",
             "# crops to embed\n"
             "a.jpg\n"
             "  with space/b 1.jpg 3 1   # pid 3, camera 1\n"
             "/abs/c.png 7 0\n"
             "\n");
  const auto records = image_list_records((dir / "list.txt").string(), "/data");
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].path, "/data/a.jpg");
  EXPECT_EQ(records[0].pid, -1);
  EXPECT_EQ(records[0].camid, -1);
  EXPECT_EQ(records[1].path, "/data/with space/b 1.jpg");
  EXPECT_EQ(records[1].pid, 3);
  EXPECT_EQ(records[1].camid, 1);
  EXPECT_EQ(records[2].path, "/abs/c.png");
  EXPECT_EQ(records[2].pid, 7);
}

TEST(ImageList, APidWithoutCamidAndAnEmptyListAreErrors) {
  TempDir dir;
  write_file(dir / "list.txt", "a.jpg\nb.jpg 5\n");
  EXPECT_NE(error_of([&] { image_list_records((dir / "list.txt").string(), "."); })
                .find("list.txt:2: expected 'path' or 'path pid camid'"),
            std::string::npos);
  write_file(dir / "list.txt", "# nothing\n\n");
  EXPECT_NE(error_of([&] { image_list_records((dir / "list.txt").string(), "."); }).find("the image list is empty"),
            std::string::npos);
  EXPECT_NE(error_of([&] { image_list_records((dir / "none.txt").string(), "."); }).find("none.txt: cannot read"),
            std::string::npos);
}

}  // namespace reid::data
