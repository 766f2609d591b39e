#include "reid/data/cuhk03.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#if REID_HAVE_MATIO
#include <matio.h>

#include "matlab.h"
#endif

#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/utils/files.h"

namespace fs = std::filesystem;

namespace reid::data {
namespace {

#if REID_HAVE_MATIO
using matlab::element_count;
using matlab::MatFile;
using matlab::numeric_vector;
#endif

const char* kMarker = ".libreid_complete";

#if REID_HAVE_MATIO
std::string cuhk03_name(int pair, int pid, int view, int image) {
  char name[64];
  std::snprintf(name, sizeof(name), "%d_%03d_%d_%02d.png", pair, pid, view, image);
  return name;
}
#endif

// camera = view - 1, the third '_' field of "{pair}_{pid}_{view}_{img}.png".
int64_t camera_of(const std::string& file_name) {
  int pair = 0, pid = 0, view = 0, image = 0;
  if (std::sscanf(file_name.c_str(), "%d_%d_%d_%d", &pair, &pid, &view, &image) != 4 || view < 1 || view > 2)
    throw IOError(file_name, "cannot parse the CUHK03 file name (expected {pair}_{pid}_{view}_{img}.png)");
  return view - 1;
}

// Lists a completed image folder back into identities (no need to reopen the .mat file).
std::vector<CUHK03Identity> list_converted(const fs::path& dir) {
  std::map<std::pair<int, int>, std::vector<std::string>> groups;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".png") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    int pair = 0, pid = 0, view = 0, image = 0;
    if (std::sscanf(file.filename().string().c_str(), "%d_%d_%d_%d", &pair, &pid, &view, &image) == 4)
      groups[{pair, pid}].push_back(file.string());
  }
  std::vector<CUHK03Identity> out;
  for (auto& group : groups) out.push_back({group.first.first, group.first.second, std::move(group.second)});
  return out;
}

#if REID_HAVE_MATIO

std::string char_array(const matvar_t* v, const std::string& path) {
  if (!v || v->class_type != MAT_C_CHAR) throw IOError(path, "expected a character array in filelist");
  const std::size_t n = element_count(v);
  std::string text;
  for (std::size_t i = 0; i < n; ++i) {
    if (v->data_type == MAT_T_UINT16 || v->data_type == MAT_T_UTF16)
      text += static_cast<char>(static_cast<const uint16_t*>(v->data)[i]);
    else
      text += static_cast<const char*>(v->data)[i];
  }
  return text;
}

// MATLAB stores an H x W x 3 image column-major: element (h, w, c) at h + H * (w + W * c).
cv::Mat matlab_image(const matvar_t* v) {
  const int h = static_cast<int>(v->dims[0]), w = static_cast<int>(v->dims[1]);
  cv::Mat bgr(h, w, CV_8UC3);
  const auto* data = static_cast<const uint8_t*>(v->data);
  const std::size_t plane = static_cast<std::size_t>(h) * w;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const std::size_t at = y + static_cast<std::size_t>(h) * x;
      bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(data[at + 2 * plane], data[at + plane], data[at]);
    }
  return bgr;
}

#endif  // REID_HAVE_MATIO

#if !REID_HAVE_MATIO
[[noreturn]] void no_matio(const std::string& path) {
  throw IOError(path, "reading the original CUHK03 .mat release needs matio: install libmatio-dev and "
                      "rebuild, or use the CUHK03-NP folder release (<root>/cuhk03-np)");
}
#endif

DatasetSplits cuhk03_np(const fs::path& dir, const std::string& kind) {
  const fs::path base = dir / kind;
  for (const char* sub : {"bounding_box_train", "query", "bounding_box_test"})
    if (!fs::is_directory(base / sub))
      throw IOError((base / sub).string(), "CUHK03-NP folder missing (expected <root>/cuhk03-np/"
                                           "{detected,labeled}/{bounding_box_train,query,bounding_box_test})");
  DatasetSplits splits;
  splits.name = "cuhk03";
  // The NP release uses Market-style names with cameras 1 and 2.
  auto parse = [&](const char* sub) {
    std::vector<ImageRecord> records;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(base / sub))
      if (entry.is_regular_file() && (entry.path().extension() == ".png" || entry.path().extension() == ".jpg"))
        files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      int64_t pid = 0, camera = 0;
      if (!parse_market_name(file.filename().string(), pid, camera) || camera < 1 || camera > 2)
        throw IOError(file.string(), "cannot parse the CUHK03-NP file name (expected <pid>_c<1|2>_<n>.png)");
      records.push_back({file.string(), pid, camera - 1});
    }
    return records;
  };
  splits.train = parse("bounding_box_train");
  splits.train_ids = relabel(splits.train);
  splits.query = parse("query");
  splits.gallery = parse("bounding_box_test");
  return splits;
}

}  // namespace

bool have_matio() {
#if REID_HAVE_MATIO
  return true;
#else
  return false;
#endif
}

std::vector<CUHK03Identity> extract_cuhk03_images(const std::string& mat_path, const std::string& kind,
                                                  const std::string& image_dir) {
  const fs::path dir(image_dir);
  if (fs::exists(dir / kMarker)) return list_converted(dir);
#if REID_HAVE_MATIO
  MatFile file(mat_path);
  const auto pairs = file.read(kind);
  if (pairs->class_type != MAT_C_CELL) throw IOError(mat_path, "'" + kind + "' is not a cell array");
  fs::create_directories(dir);
  logger().info("cuhk03: converting the {} images of {} to {} (once)", kind, mat_path, image_dir);
  std::vector<CUHK03Identity> identities;
  const std::size_t pair_count = element_count(pairs.get());
  std::size_t written = 0;
  for (std::size_t p = 0; p < pair_count; ++p) {
    const matvar_t* pair = Mat_VarGetCell(pairs.get(), static_cast<int>(p));
    if (!pair || pair->class_type != MAT_C_CELL || pair->rank != 2)
      throw IOError(mat_path, "'" + kind + "' camera pair " + std::to_string(p + 1) + " is not a cell matrix");
    const std::size_t pids = pair->dims[0], slots = pair->dims[1];
    for (std::size_t pid = 0; pid < pids; ++pid) {
      CUHK03Identity identity{static_cast<int>(p + 1), static_cast<int>(pid + 1), {}};
      for (std::size_t slot = 0; slot < slots; ++slot) {
        const matvar_t* image = Mat_VarGetCell(const_cast<matvar_t*>(pair), static_cast<int>(pid + pids * slot));
        if (!image || image->rank < 3 || element_count(image) == 0 || image->class_type != MAT_C_UINT8 ||
            !image->data)
          continue;  // an empty cell: this identity has fewer than 10 images
        const int view = slot < 5 ? 1 : 2;
        const fs::path target = dir / cuhk03_name(identity.pair, identity.pid, view, static_cast<int>(slot + 1));
        if (!fs::exists(target))
          utils::write_atomically(target.string(), "the converted image", [&](const std::string& temporary) {
            if (!cv::imwrite(temporary, matlab_image(image))) throw IOError(temporary, "cannot write the converted image");
          });
        identity.paths.push_back(target.string());
        ++written;
      }
      if (identity.paths.empty())
        throw IOError(mat_path, "camera pair " + std::to_string(identity.pair) + " identity " +
                                    std::to_string(identity.pid) + " has no images");
      identities.push_back(std::move(identity));
    }
  }
  utils::write_file_atomically((dir / kMarker).string(), std::to_string(written) + "\n", "the conversion marker");
  logger().info("cuhk03: {} {} images converted", written, kind);
  return identities;
#else
  no_matio(mat_path);
#endif
}

std::vector<std::vector<std::pair<int, int>>> read_cuhk03_testsets(const std::string& mat_path) {
#if REID_HAVE_MATIO
  MatFile file(mat_path);
  const auto sets = file.read("testsets");
  if (sets->class_type != MAT_C_CELL) throw IOError(mat_path, "'testsets' is not a cell array");
  std::vector<std::vector<std::pair<int, int>>> out;
  for (std::size_t i = 0; i < element_count(sets.get()); ++i) {
    const matvar_t* split = Mat_VarGetCell(sets.get(), static_cast<int>(i));
    if (!split || split->rank != 2 || split->dims[1] != 2)
      throw IOError(mat_path, "testsets{" + std::to_string(i + 1) + "} is not an N x 2 matrix");
    const auto values = numeric_vector(split, "testsets", mat_path);
    const std::size_t rows = split->dims[0];
    std::vector<std::pair<int, int>> pairs;
    for (std::size_t r = 0; r < rows; ++r)
      pairs.emplace_back(static_cast<int>(values[r]), static_cast<int>(values[r + rows]));
    out.push_back(std::move(pairs));
  }
  return out;
#else
  no_matio(mat_path);
#endif
}

DatasetSplits cuhk03(const DatasetOptions& options) {
  const auto& o = options.cuhk03;
  const std::string kind = o.labeled ? "labeled" : "detected";
  const fs::path np_dir = fs::path(options.root) / "cuhk03-np";
  if (!o.classic_split && fs::is_directory(np_dir)) return cuhk03_np(np_dir, kind);

  const fs::path dir = fs::path(options.root) / "cuhk03";
  const fs::path mat_path = dir / "cuhk03_release" / "cuhk-03.mat";
  if (!fs::is_regular_file(mat_path) && !fs::exists(dir / ("images_" + kind) / kMarker))
    throw IOError(mat_path.string(), "dataset cuhk03 not found (expected <root>/cuhk03-np/{detected,labeled}/... "
                                     "or <root>/cuhk03/cuhk03_release/cuhk-03.mat with "
                                     "<root>/cuhk03/cuhk03_new_protocol_config_{detected,labeled}.mat)");
  const auto identities = extract_cuhk03_images(mat_path.string(), kind, (dir / ("images_" + kind)).string());
  DatasetSplits splits;
  splits.name = "cuhk03";

  if (o.classic_split) {
    const auto testsets = read_cuhk03_testsets(mat_path.string());
    if (o.split_id < 0 || o.split_id >= static_cast<int>(testsets.size()))
      throw ConfigError("data.cuhk03.split_id", "split " + std::to_string(o.split_id) + " does not exist (" +
                                                    std::to_string(testsets.size()) + " classic splits)");
    const std::set<std::pair<int, int>> test(testsets[o.split_id].begin(), testsets[o.split_id].end());
    int64_t train_pid = 0, test_pid = 0;
    for (const auto& identity : identities) {
      const bool in_test = test.count({identity.pair, identity.pid}) > 0;
      auto& target = in_test ? splits.query : splits.train;
      const int64_t label = in_test ? test_pid++ : train_pid++;
      for (const auto& path : identity.paths)
        target.push_back({path, label, camera_of(fs::path(path).filename().string())});
    }
    splits.gallery = splits.query;  // classic protocol: query = gallery, single-gallery-shot metric
    return splits;
  }

  const fs::path config_path = dir / ("cuhk03_new_protocol_config_" + kind + ".mat");
#if REID_HAVE_MATIO
  MatFile config(config_path.string());
  const auto index = [&](const char* name) {
    auto values = numeric_vector(config.read(name).get(), name, config_path.string());
    for (auto& v : values) --v;  // MATLAB indices are 1-based
    return values;
  };
  const auto train_idx = index("train_idx");
  const auto query_idx = index("query_idx");
  const auto gallery_idx = index("gallery_idx");
  const auto labels = numeric_vector(config.read("labels").get(), "labels", config_path.string());
  const auto filelist = config.read("filelist");
  const std::size_t files = element_count(filelist.get());
  const fs::path image_dir = dir / ("images_" + kind);
  auto take = [&](const std::vector<int64_t>& idxs) {
    std::vector<ImageRecord> records;
    for (int64_t i : idxs) {
      if (i < 0 || static_cast<std::size_t>(i) >= files || static_cast<std::size_t>(i) >= labels.size())
        throw IOError(config_path.string(), "index " + std::to_string(i + 1) + " is out of range");
      const std::string name = char_array(Mat_VarGetCell(filelist.get(), static_cast<int>(i)), config_path.string());
      records.push_back({(image_dir / name).string(), labels[i], camera_of(name)});
    }
    return records;
  };
  splits.train = take(train_idx);
  splits.train_ids = relabel(splits.train);
  splits.query = take(query_idx);
  splits.gallery = take(gallery_idx);
  return splits;
#else
  no_matio(config_path.string());
#endif
}

}  // namespace reid::data
