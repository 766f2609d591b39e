#include "reid/data/datasets.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>

#include "reid/core/error.h"
#include "reid/data/cuhk03.h"
#include "reid/data/synthetic.h"
#include "reid/data/tracklets.h"
#include "reid/data/video_datasets.h"
#include "reid/utils/strings.h"
#include "parsing.h"

namespace fs = std::filesystem;

namespace reid::data {

namespace detail {

namespace {
std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

}  // namespace

bool is_image_file(const fs::path& path) {
  const std::string ext = lower(path.extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

// Files of `dir` in sorted order, so that parsing is deterministic.
std::vector<fs::path> sorted_images(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// The first existing candidate folder, or an IOError describing the expected layout.
fs::path find_dataset_dir(const std::string& dataset, const std::vector<fs::path>& candidates,
                          const std::vector<std::string>& required, const std::string& layout) {
  for (const auto& dir : candidates) {
    bool complete = true;
    for (const auto& sub : required) complete = complete && fs::exists(dir / sub);
    if (complete) return dir;
  }
  std::string missing;
  for (const auto& dir : candidates) {
    if (!fs::is_directory(dir)) continue;
    for (const auto& sub : required)
      if (!fs::exists(dir / sub)) {
        missing = (dir / sub).string();
        break;
      }
    if (!missing.empty()) break;
  }
  const std::string where = missing.empty() ? candidates.front().string() : missing;
  throw IOError(where, "dataset " + dataset + " not found there (expected layout: " + layout + ")");
}

// Calls `parse(line, where)` for every non-blank line of the list file `list`, trimmed, with the
// text after '#' dropped when `comments`; `where` is "<list>:<line number>" for error messages.
void for_each_list_line(const std::string& list, const std::string& what, bool comments,
                        const std::function<void(const std::string&, const std::string&)>& parse) {
  std::ifstream in(list);
  if (!in) throw IOError(list, "cannot read " + what);
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (comments) line = line.substr(0, line.find('#'));
    line = utils::trim(line);
    if (!line.empty()) parse(line, list + ":" + std::to_string(line_number));
  }
}

// Splits `line` into a leading part (which may hold spaces: a path) and its last `count`
// white-space separated fields. False when the line has fewer than count + 1 fields.
bool split_last_fields(const std::string& line, std::size_t count, std::string& head,
                       std::vector<std::string>& fields) {
  fields.assign(count, "");
  std::size_t end = line.size();
  for (std::size_t i = count; i-- > 0;) {
    const auto last = line.find_last_of(" \t", end - 1);
    if (last == std::string::npos) return false;
    fields[i] = line.substr(last + 1, end - last - 1);
    const auto before = line.find_last_not_of(" \t", last);
    if (before == std::string::npos) return false;
    end = before + 1;
  }
  head = line.substr(0, end);
  return true;
}

// `text` as a whole integer.
bool parse_integer(const std::string& text, int64_t& value) {
  try {
    std::size_t used = 0;
    value = std::stoll(text, &used);
    return used == text.size();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace detail

namespace {

using detail::find_dataset_dir;
using detail::for_each_list_line;
using detail::is_image_file;
using detail::parse_integer;
using detail::sorted_images;
using detail::split_last_fields;


// A Market-style folder: every image named "<pid>_c<camera>...", junk (-1) dropped.
std::vector<ImageRecord> parse_market_dir(const fs::path& dir, int64_t max_camera) {
  std::vector<ImageRecord> records;
  for (const auto& file : sorted_images(dir)) {
    int64_t pid = 0, camera = 0;
    if (!parse_market_name(file.filename().string(), pid, camera))
      throw IOError(file.string(), "cannot parse the file name: expected <pid>_c<camera>... as in "
                                   "0002_c1s1_000451_03.jpg");
    if (pid == -1) continue;
    if (pid < -1)
      throw IOError(file.string(), "invalid identity " + std::to_string(pid) + " in the file name");
    if (camera < 1 || camera > max_camera)
      throw IOError(file.string(), "camera " + std::to_string(camera) + " out of range 1-" +
                                       std::to_string(max_camera));
    records.push_back({file.string(), pid, camera - 1});
  }
  return records;
}

DatasetSplits market_style(const std::string& name, const std::vector<fs::path>& candidates,
                           const std::string& layout, int64_t max_camera,
                           std::vector<int64_t> distractors) {
  const fs::path dir = find_dataset_dir(name, candidates, {"bounding_box_train", "query", "bounding_box_test"}, layout);
  DatasetSplits splits;
  splits.name = name;
  splits.train = parse_market_dir(dir / "bounding_box_train", max_camera);
  splits.train_ids = relabel(splits.train);
  splits.query = parse_market_dir(dir / "query", max_camera);
  splits.gallery = parse_market_dir(dir / "bounding_box_test", max_camera);
  splits.distractor_pids = std::move(distractors);
  return splits;
}

// MSMT17 list file: "<relative path> <pid>" per line; camera = third '_' field.
std::vector<ImageRecord> parse_msmt_list(const fs::path& list, const fs::path& image_dir) {
  std::vector<ImageRecord> records;
  for_each_list_line(list.string(), "the MSMT17 list file", false, [&](const std::string& line, const std::string& where) {
    std::string relative;
    std::vector<std::string> fields;
    int64_t pid = 0;
    if (!split_last_fields(line, 1, relative, fields) || !parse_integer(fields[0], pid))
      throw IOError(where, "expected '<relative path> <pid>' (got '" + line + "')");
    const auto parts = utils::split(fs::path(relative).filename().string(), '_');
    int64_t camera = 0;
    if (parts.size() < 3 || !parse_integer(parts[2], camera))
      throw IOError(where, "cannot parse the camera of '" + relative +
                               "' (expected the third '_' field to be the camera, as in "
                               "0000/0000_000_01_0303morning_0015_0.jpg)");
    if (camera < 1 || camera > 15)
      throw IOError(where, "camera " + std::to_string(camera) + " out of range 1-15 in '" + relative + "'");
    records.push_back({(image_dir / relative).string(), pid, camera - 1});
  });
  return records;
}

// Custom list file: "<relative path> <pid> <camid>" per line ('#' comments, blank lines).
std::vector<ImageRecord> parse_custom_list(const std::string& list, const fs::path& image_root) {
  std::vector<ImageRecord> records;
  for_each_list_line(list, "the list file", true, [&](const std::string& line, const std::string& where) {
    // The last two fields are pid and camid; everything before is the path (it may hold spaces).
    std::string path;
    std::vector<std::string> fields;
    if (!split_last_fields(line, 2, path, fields))
      throw IOError(where, "expected '<relative path> <pid> <camid>' (got '" + line + "')");
    int64_t pid = 0, camid = 0;
    if (!parse_integer(fields[0], pid) || !parse_integer(fields[1], camid))
      throw IOError(where, "pid and camid must be integers (got '" + fields[0] + "' and '" + fields[1] + "')");
    if (camid < 0) throw IOError(where, "camid must be >= 0 (got " + std::to_string(camid) + ")");
    const fs::path full = fs::path(path).is_absolute() ? fs::path(path) : image_root / path;
    if (!fs::is_regular_file(full)) throw IOError(where, "image not found: " + full.string());
    records.push_back({full.string(), pid, camid});
  });
  return records;
}

}  // namespace

bool parse_market_name(const std::string& file_name, int64_t& pid, int64_t& camera) {
  // "<pid>_c<camera>..." with pid possibly "-1".
  const auto underscore = file_name.find('_');
  if (underscore == std::string::npos || underscore == 0) return false;
  const std::string pid_text = file_name.substr(0, underscore);
  if (pid_text.find_first_not_of("-0123456789") != std::string::npos) return false;
  if (underscore + 2 >= file_name.size() || file_name[underscore + 1] != 'c') return false;
  std::size_t end = underscore + 2;
  while (end < file_name.size() && std::isdigit(static_cast<unsigned char>(file_name[end]))) ++end;
  if (end == underscore + 2) return false;
  try {
    pid = std::stoll(pid_text);
    camera = std::stoll(file_name.substr(underscore + 2, end - underscore - 2));
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

DatasetSplits market1501(const DatasetOptions& options) {
  const fs::path base = fs::path(options.root) / "market1501";
  return market_style("market1501", {base / "Market-1501-v15.09.15", base},
                      "<root>/market1501/Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}",
                      6, {0, -1});
}

DatasetSplits dukemtmcreid(const DatasetOptions& options) {
  const fs::path base = fs::path(options.root) / "dukemtmc-reid";
  return market_style("dukemtmcreid", {base / "DukeMTMC-reID", base},
                      "<root>/dukemtmc-reid/DukeMTMC-reID/{bounding_box_train,query,bounding_box_test}",
                      8, {});
}

DatasetSplits msmt17(const DatasetOptions& options) {
  const fs::path base = fs::path(options.root) / "msmt17";
  struct Version {
    const char* dir;
    const char* train;
    const char* test;
  };
  const std::vector<std::string> lists = {"list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt"};
  for (const auto& v : {Version{"MSMT17_V1", "train", "test"}, Version{"MSMT17_V2", "mask_train_v2", "mask_test_v2"}}) {
    const fs::path dir = base / v.dir;
    if (!fs::is_directory(dir)) continue;
    std::vector<std::string> required = lists;
    required.push_back(v.train);
    required.push_back(v.test);
    find_dataset_dir("msmt17", {dir}, required,
                     std::string("<root>/msmt17/") + v.dir + "/{" + v.train + "," + v.test +
                         ",list_train.txt,list_val.txt,list_query.txt,list_gallery.txt}");
    DatasetSplits splits;
    splits.name = "msmt17";
    splits.train = parse_msmt_list(dir / "list_train.txt", dir / v.train);
    splits.val = parse_msmt_list(dir / "list_val.txt", dir / v.train);
    splits.query = parse_msmt_list(dir / "list_query.txt", dir / v.test);
    splits.gallery = parse_msmt_list(dir / "list_gallery.txt", dir / v.test);
    // val holds more images of the training identities: one label space for both.
    std::vector<ImageRecord> both = splits.train;
    both.insert(both.end(), splits.val.begin(), splits.val.end());
    relabel(both);  // no train_ids: MSMT17's query/gallery ids are numbered afresh
    std::copy(both.begin(), both.begin() + static_cast<std::ptrdiff_t>(splits.train.size()), splits.train.begin());
    std::copy(both.begin() + static_cast<std::ptrdiff_t>(splits.train.size()), both.end(), splits.val.begin());
    return splits;
  }
  throw IOError(base.string(), "dataset msmt17 not found there (expected <root>/msmt17/MSMT17_V1/"
                               "{train,test,list_*.txt} or <root>/msmt17/MSMT17_V2/{mask_train_v2,"
                               "mask_test_v2,list_*.txt})");
}

DatasetSplits custom_dataset(const DatasetOptions& options) {
  const auto& c = options.custom;
  const fs::path image_root = c.image_root.empty() ? fs::path(options.root) : fs::path(c.image_root);
  if (!fs::is_directory(image_root))
    throw IOError(image_root.string(), "image root of the custom dataset not found");
  DatasetSplits splits;
  splits.name = "custom";
  if (c.train_list.empty() && c.query_list.empty())
    throw ConfigError("data.custom", "the custom dataset needs data.custom.train_list and/or "
                                     "data.custom.query_list + data.custom.gallery_list");
  if (!c.train_list.empty()) {
    splits.train = parse_custom_list(c.train_list, image_root);
    splits.train_ids = relabel(splits.train);
  }
  if (!c.query_list.empty() || !c.gallery_list.empty()) {
    if (c.query_list.empty() || c.gallery_list.empty())
      throw ConfigError("data.custom", "query_list and gallery_list must be given together");
    splits.query = parse_custom_list(c.query_list, image_root);
    splits.gallery = parse_custom_list(c.gallery_list, image_root);
  }
  return splits;
}

std::vector<ImageRecord> image_folder_records(const std::string& dir) {
  if (!fs::is_directory(dir)) throw IOError(dir, "image folder not found");
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path());
  if (files.empty()) throw IOError(dir, "no images (.jpg, .jpeg, .png, .bmp) in the folder");
  std::sort(files.begin(), files.end());
  std::vector<ImageRecord> records;
  for (const auto& file : files) {
    int64_t pid = -1, camera = 0;
    if (!parse_market_name(file.filename().string(), pid, camera)) pid = -1, camera = 0;
    records.push_back({file.string(), pid, camera - 1});
  }
  return records;
}

std::vector<ImageRecord> image_list_records(const std::string& list, const std::string& root) {
  std::vector<ImageRecord> records;
  for_each_list_line(list, "the image list", true, [&](const std::string& line, const std::string& where) {
    // "path" alone, or "path pid camid" when the line ends with two integers (paths may hold spaces).
    std::string path = line, head;
    std::vector<std::string> fields;
    int64_t pid = -1, camid = -1;
    if (split_last_fields(line, 1, head, fields) && parse_integer(fields[0], camid)) {
      if (!split_last_fields(line, 2, head, fields) || !parse_integer(fields[0], pid))
        throw IOError(where, "expected 'path' or 'path pid camid' (got '" + line + "')");
      path = head;
    } else {
      camid = -1;
    }
    const fs::path full = fs::path(path).is_absolute() ? fs::path(path) : fs::path(root) / path;
    records.push_back({full.string(), pid, camid});
  });
  if (records.empty()) throw IOError(list, "the image list is empty");
  return records;
}

void register_builtin_datasets(DatasetRegistry& registry) {
  registry.add("market1501", market1501);
  registry.add("dukemtmcreid", dukemtmcreid);
  registry.add("msmt17", msmt17);
  registry.add("cuhk03", cuhk03);
  registry.add("custom", custom_dataset);
  registry.add("synthetic", synthetic_dataset);
  registry.add("synthetic_video", synthetic_video_dataset);
  registry.add("mars", mars);
  registry.add("dukemtmcvidreid", dukemtmcvidreid);
  registry.add("ilidsvid", ilidsvid);
  registry.add("prid2011", prid2011);
  registry.add("custom_video", custom_video);
}

const DatasetRegistry& builtin_datasets() {
  static const DatasetRegistry registry = [] {
    DatasetRegistry r("dataset");
    register_builtin_datasets(r);
    return r;
  }();
  return registry;
}

DatasetSplits load_dataset(const std::string& name, const DatasetOptions& options,
                           const DatasetRegistry& registry) {
  DatasetSplits splits = registry.create(name, options);
  splits.name = name;
  if (options.combine_all) combine_all(splits);
  return splits;
}

}  // namespace reid::data
