#include "reid/data/video_datasets.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#if REID_HAVE_MATIO
#include "matlab.h"
#endif

#include "parsing.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/data/tracklets.h"
#include "reid/utils/files.h"
#include "reid/utils/random.h"
#include "reid/utils/strings.h"

namespace fs = std::filesystem;

namespace reid::data {
namespace {

using detail::find_dataset_dir;
using detail::for_each_list_line;
using detail::parse_integer;
using detail::sorted_images;
using detail::split_last_fields;

// Tracklets of fewer than `min_frames` frames are dropped (counted in the log).
std::vector<Tracklet> drop_short(std::vector<Tracklet> tracklets, int min_frames, const std::string& where) {
  if (min_frames <= 1) return tracklets;
  const auto before = tracklets.size();
  tracklets.erase(std::remove_if(tracklets.begin(), tracklets.end(),
                                 [&](const Tracklet& t) { return static_cast<int>(t.frames.size()) < min_frames; }),
                  tracklets.end());
  if (tracklets.size() != before)
    logger().info("{}: {} of {} tracklets have fewer than {} frames (data.video.min_frames) and are left out", where,
                  before - tracklets.size(), before, min_frames);
  return tracklets;
}

// Training split: records relabelled to 0..N-1, with the dataset ids kept in train_ids.
void set_train(DatasetSplits& splits, const std::vector<Tracklet>& train) {
  splits.train = tracklet_records(train);
  splits.train_ids = relabel(splits.train);
}

// ---- MARS -------------------------------------------------------------------------------------

// A MARS frame name "0001C1T0001F001.jpg": identity (4 characters, "00-1" for junk) and camera.
bool parse_mars_name(const std::string& name, int64_t& pid, int64_t& camera) {
  if (name.size() < 7 || name[4] != 'C') return false;
  if (name.compare(0, 4, "00-1") == 0)
    pid = -1;
  else if (!parse_integer(name.substr(0, 4), pid))
    return false;
  if (name[5] < '0' || name[5] > '9') return false;
  camera = name[5] - '0';
  return true;
}

std::vector<std::string> read_lines(const std::string& path, const std::string& what) {
  std::vector<std::string> lines;
  for_each_list_line(path, what, false, [&](const std::string& line, const std::string&) { lines.push_back(line); });
  return lines;
}

#if REID_HAVE_MATIO
// A numeric matrix with `columns` columns, row by row (MATLAB stores it column-major).
std::vector<std::vector<int64_t>> mat_rows(const std::string& path, const std::string& variable, std::size_t columns) {
  matlab::MatFile file(path);
  const auto var = file.read(variable);
  if (var->rank != 2 || var->dims[1] != columns)
    throw IOError(path, "variable '" + variable + "' must be a matrix of " + std::to_string(columns) + " columns");
  const auto values = matlab::numeric_vector(var.get(), variable, path);
  const std::size_t rows = var->dims[0];
  std::vector<std::vector<int64_t>> out(rows, std::vector<int64_t>(columns));
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < columns; ++c) out[r][c] = values[r + rows * c];
  return out;
}

std::vector<int64_t> mat_vector(const std::string& path, const std::string& variable) {
  matlab::MatFile file(path);
  const auto var = file.read(variable);
  return matlab::numeric_vector(var.get(), variable, path);
}

// The tracklets of one MARS split: `rows` of (first, last, pid, camera) into `names`, frames under
// `image_dir`/<name[0:4]>/. Junk (pid -1) is dropped (`keep` says which rows were kept).
std::vector<Tracklet> mars_tracklets(const std::vector<std::vector<int64_t>>& rows, const std::vector<std::string>& names,
                                     const fs::path& image_dir, const std::string& info_path,
                                     std::vector<bool>* kept = nullptr) {
  std::vector<Tracklet> tracklets;
  if (kept) kept->assign(rows.size(), false);
  const auto count = static_cast<int64_t>(names.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const int64_t first = rows[r][0], last = rows[r][1], pid = rows[r][2], camera = rows[r][3];
    const std::string where = "row " + std::to_string(r + 1);
    if (first < 1 || last < first || last > count)
      throw IOError(info_path, where + ": frames " + std::to_string(first) + "-" + std::to_string(last) +
                                   " are outside the name list (" + std::to_string(count) + " names)");
    if (pid == -1) continue;
    if (pid < 0) throw IOError(info_path, where + ": invalid identity " + std::to_string(pid));
    if (camera < 1 || camera > 6)
      throw IOError(info_path, where + ": camera " + std::to_string(camera) + " out of range 1-6");
    Tracklet t;
    t.pid = pid;
    t.camid = camera - 1;
    for (int64_t i = first - 1; i < last; ++i) {
      const auto& name = names[static_cast<std::size_t>(i)];
      int64_t name_pid = 0, name_camera = 0;
      if (!parse_mars_name(name, name_pid, name_camera))
        throw IOError(info_path, where + ": cannot parse frame name '" + name + "' (expected 0001C1T0001F001.jpg)");
      if (name_pid != pid || name_camera != camera)
        throw IOError(info_path, where + " says identity " + std::to_string(pid) + ", camera " + std::to_string(camera) +
                                     " but frame '" + name + "' is of identity " + std::to_string(name_pid) +
                                     ", camera " + std::to_string(name_camera));
      t.frames.push_back((image_dir / name.substr(0, 4) / name).string());
    }
    tracklets.push_back(std::move(t));
    if (kept) (*kept)[r] = true;
  }
  return tracklets;
}
#endif

// ---- DukeMTMC-VideoReID -----------------------------------------------------------------------

// Camera (1-8) of a DukeMTMC-VideoReID frame: "0001_C6_F0001_X30823.jpg" or "0001C6F0001X30823.jpg".
bool duke_video_camera(const std::string& name, int64_t& camera) {
  const std::size_t at = name.find('_') == std::string::npos ? 4 : 5;
  if (name.size() <= at + 1 || name[at] != 'C' || name[at + 1] < '1' || name[at + 1] > '8') return false;
  camera = name[at + 1] - '0';
  return true;
}

std::vector<fs::path> sorted_dirs(const fs::path& dir) {
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.is_directory()) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

std::vector<Tracklet> duke_video_split(const fs::path& dir) {
  std::vector<Tracklet> tracklets;
  for (const auto& person : sorted_dirs(dir)) {
    int64_t pid = 0;
    if (!parse_integer(person.filename().string(), pid) || pid < 0)
      throw IOError(person.string(), "expected an identity folder named by a number (as 0001)");
    for (const auto& folder : sorted_dirs(person)) {
      const auto files = sorted_images(folder);
      if (files.empty()) throw IOError(folder.string(), "tracklet folder without images");
      int64_t camera = 0;
      if (!duke_video_camera(files.front().filename().string(), camera))
        throw IOError(files.front().string(), "cannot parse the camera (expected 0001_C6_F0001_X30823.jpg)");
      Tracklet t;
      t.pid = pid;
      t.camid = camera - 1;
      for (const auto& f : files) t.frames.push_back(f.string());
      tracklets.push_back(std::move(t));
    }
  }
  return tracklets;
}

// ---- iLIDS-VID and PRID2011 -------------------------------------------------------------------

struct TwoCameraLayout {
  std::string dataset;
  std::vector<fs::path> candidates;  // folders holding the two camera folders
  std::string cameras[2];            // camera folder names (query camera first)
  std::string prefix;                // person folder prefix ("person", "person_")
  std::string layout;                // for error messages
};

// person number -> sorted frames, for each camera folder.
std::map<int64_t, std::vector<std::string>> person_sequences(const fs::path& dir, const std::string& prefix) {
  std::map<int64_t, std::vector<std::string>> sequences;
  for (const auto& folder : sorted_dirs(dir)) {
    const std::string name = folder.filename().string();
    int64_t person = 0;
    if (!utils::starts_with(name, prefix) || !parse_integer(name.substr(prefix.size()), person) || person < 0)
      throw IOError(folder.string(), "expected person folders named " + prefix + "<number>");
    std::vector<std::string> frames;
    for (const auto& f : sorted_images(folder)) frames.push_back(f.string());
    if (frames.empty()) throw IOError(folder.string(), "person folder without images");
    sequences.emplace(person, std::move(frames));
  }
  return sequences;
}

DatasetSplits two_camera_dataset(const TwoCameraLayout& layout, const DatasetOptions& options) {
  const auto& v = options.video;
  const fs::path dir = find_dataset_dir(layout.dataset, layout.candidates, {layout.cameras[0], layout.cameras[1]},
                                        layout.layout);
  const auto first = person_sequences(dir / layout.cameras[0], layout.prefix);
  const auto second = person_sequences(dir / layout.cameras[1], layout.prefix);
  // The persons seen by both cameras, with sequences of at least min_frames frames in each.
  std::vector<int64_t> persons;
  for (const auto& [person, frames] : first) {
    const auto other = second.find(person);
    if (other == second.end()) continue;
    if (static_cast<int>(frames.size()) < v.min_frames || static_cast<int>(other->second.size()) < v.min_frames)
      continue;
    persons.push_back(person);
  }
  if (persons.size() < 2)
    throw IOError(dir.string(), layout.dataset + ": fewer than 2 persons are seen by both cameras" +
                                    (v.min_frames > 0 ? " with data.video.min_frames frames" : std::string()));
  const fs::path splits_file =
      v.splits_file.empty()
          ? dir / ("libreid_splits_" + std::to_string(v.num_splits) + "x_seed" + std::to_string(v.split_seed) +
                   (v.min_frames > 0 ? "_min" + std::to_string(v.min_frames) : std::string()) + ".txt")
          : fs::path(v.splits_file);
  std::vector<PersonSplit> splits;
  if (fs::exists(splits_file)) {
    splits = read_person_splits(splits_file.string(), persons);
  } else {
    splits = random_person_splits(persons, v.num_splits, static_cast<uint64_t>(v.split_seed));
    try {
      write_person_splits(splits_file.string(), splits,
                          layout.dataset + ": " + std::to_string(v.num_splits) + " random person splits, seed " +
                              std::to_string(v.split_seed) + ", " + std::to_string(persons.size()) + " persons" +
                              (v.min_frames > 0 ? " with at least " + std::to_string(v.min_frames) + " frames" : ""));
      logger().info("{}: wrote the person splits to {}", layout.dataset, splits_file.string());
    } catch (const Error& e) {
      if (!v.splits_file.empty()) throw;  // a file the user named must be written
      logger().warn("{}: the person splits (seed {}) could not be saved: {}", layout.dataset, v.split_seed, e.what());
    }
  }
  if (v.split_id < 0 || v.split_id >= static_cast<int>(splits.size()))
    throw ConfigError("data.video.split_id", std::to_string(v.split_id) + " is not a split of " + splits_file.string() +
                                                 " (" + std::to_string(splits.size()) + " splits)");
  const auto& split = splits[static_cast<std::size_t>(v.split_id)];
  const auto tracklet = [&](int64_t person, int camera) {
    const auto& sequences = camera == 0 ? first : second;
    return Tracklet{sequences.at(person), person, camera};
  };
  std::vector<Tracklet> train, query, gallery;
  for (int64_t person : split.train) {
    train.push_back(tracklet(person, 0));
    train.push_back(tracklet(person, 1));
  }
  for (int64_t person : split.test) {
    query.push_back(tracklet(person, 0));
    gallery.push_back(tracklet(person, 1));
  }
  DatasetSplits out;
  out.name = layout.dataset;
  set_train(out, train);
  out.query = tracklet_records(query);
  out.gallery = tracklet_records(gallery);
  return out;
}

// ---- custom_video -----------------------------------------------------------------------------

std::vector<Tracklet> parse_custom_video_list(const std::string& list, const fs::path& root, int min_frames) {
  std::vector<Tracklet> tracklets;
  std::map<std::string, std::size_t> named;  // tracklet name -> index in `tracklets`
  for_each_list_line(list, "the tracklet list", true, [&](const std::string& line, const std::string& where) {
    const auto full = [&](const std::string& path) { return fs::path(path).is_absolute() ? fs::path(path) : root / path; };
    std::string head;
    std::vector<std::string> fields;
    int64_t pid = 0, camid = 0;
    // `frame pid camid tracklet`, when the path is an image file.
    if (split_last_fields(line, 3, head, fields) && parse_integer(fields[0], pid) && parse_integer(fields[1], camid) &&
        fs::is_regular_file(full(head))) {
      if (camid < 0) throw IOError(where, "camid must be >= 0 (got " + std::to_string(camid) + ")");
      const auto [it, added] = named.emplace(fields[2], tracklets.size());
      if (added) tracklets.push_back(Tracklet{{}, pid, camid});
      auto& t = tracklets[it->second];
      if (t.pid != pid || t.camid != camid)
        throw IOError(where, "tracklet '" + fields[2] + "' changes identity or camera (" + std::to_string(t.pid) + ", " +
                                 std::to_string(t.camid) + " before, " + std::to_string(pid) + ", " +
                                 std::to_string(camid) + " here)");
      t.frames.push_back(full(head).string());
      return;
    }
    // `folder pid camid`.
    if (!split_last_fields(line, 2, head, fields))
      throw IOError(where, "expected 'folder pid camid' or 'frame pid camid tracklet' (got '" + line + "')");
    if (!parse_integer(fields[0], pid) || !parse_integer(fields[1], camid))
      throw IOError(where, "pid and camid must be integers (got '" + fields[0] + "' and '" + fields[1] + "')");
    if (camid < 0) throw IOError(where, "camid must be >= 0 (got " + std::to_string(camid) + ")");
    const fs::path folder = full(head);
    if (!fs::is_directory(folder))
      throw IOError(where, "not a tracklet folder, nor an image with a tracklet name: " + folder.string());
    Tracklet t{{}, pid, camid};
    for (const auto& f : sorted_images(folder)) t.frames.push_back(f.string());
    if (t.frames.empty()) throw IOError(where, "tracklet folder without images: " + folder.string());
    tracklets.push_back(std::move(t));
  });
  return drop_short(std::move(tracklets), min_frames, list);
}

}  // namespace

DatasetSplits mars(const DatasetOptions& options) {
  const fs::path base = fs::path(options.root) / "mars";
  const std::vector<std::string> info = {"info/train_name.txt", "info/test_name.txt", "info/tracks_train_info.mat",
                                         "info/tracks_test_info.mat", "info/query_IDX.mat"};
  std::vector<std::string> required = {"bbox_train", "bbox_test"};
  required.insert(required.end(), info.begin(), info.end());
  const fs::path dir = find_dataset_dir("mars", {base, base / "MARS"}, required,
                                        "<root>/mars/{bbox_train,bbox_test,info/{train_name.txt,test_name.txt,"
                                        "tracks_train_info.mat,tracks_test_info.mat,query_IDX.mat}}");
#if REID_HAVE_MATIO
  const auto train_names = read_lines((dir / info[0]).string(), "the MARS name list");
  const auto test_names = read_lines((dir / info[1]).string(), "the MARS name list");
  const auto train_rows = mat_rows((dir / info[2]).string(), "track_train_info", 4);
  const auto test_rows = mat_rows((dir / info[3]).string(), "track_test_info", 4);
  const auto query_index = mat_vector((dir / info[4]).string(), "query_IDX");
  DatasetSplits splits;
  splits.name = "mars";
  const int min_frames = options.video.min_frames;
  set_train(splits, drop_short(mars_tracklets(train_rows, train_names, dir / "bbox_train", (dir / info[2]).string()),
                               min_frames, "mars train"));
  // Query rows by index into the test tracks; the gallery is every other test row.
  std::vector<bool> is_query(test_rows.size(), false);
  for (int64_t q : query_index) {
    if (q < 1 || q > static_cast<int64_t>(test_rows.size()))
      throw IOError((dir / info[4]).string(), "query index " + std::to_string(q) + " is outside the " +
                                                  std::to_string(test_rows.size()) + " test tracks");
    is_query[static_cast<std::size_t>(q - 1)] = true;
  }
  std::vector<std::vector<int64_t>> query_rows, gallery_rows;
  for (std::size_t r = 0; r < test_rows.size(); ++r) (is_query[r] ? query_rows : gallery_rows).push_back(test_rows[r]);
  const std::string test_info = (dir / info[3]).string();
  splits.query = tracklet_records(
      drop_short(mars_tracklets(query_rows, test_names, dir / "bbox_test", test_info), min_frames, "mars query"));
  splits.gallery = tracklet_records(
      drop_short(mars_tracklets(gallery_rows, test_names, dir / "bbox_test", test_info), min_frames, "mars gallery"));
  splits.distractor_pids = {0, -1};
  return splits;
#else
  throw IOError((dir / info[2]).string(), "reading MARS's .mat files needs matio: install libmatio-dev and rebuild");
#endif
}

DatasetSplits dukemtmcvidreid(const DatasetOptions& options) {
  const fs::path base = fs::path(options.root) / "dukemtmc-vidreid";
  const fs::path dir = find_dataset_dir("dukemtmcvidreid", {base / "DukeMTMC-VideoReID", base},
                                        {"train", "query", "gallery"},
                                        "<root>/dukemtmc-vidreid/DukeMTMC-VideoReID/{train,query,gallery}/<pid>/"
                                        "<tracklet>/<frames>");
  const int min_frames = options.video.min_frames;
  DatasetSplits splits;
  splits.name = "dukemtmcvidreid";
  set_train(splits, drop_short(duke_video_split(dir / "train"), min_frames, "dukemtmcvidreid train"));
  splits.query = tracklet_records(drop_short(duke_video_split(dir / "query"), min_frames, "dukemtmcvidreid query"));
  splits.gallery =
      tracklet_records(drop_short(duke_video_split(dir / "gallery"), min_frames, "dukemtmcvidreid gallery"));
  return splits;
}

DatasetSplits ilidsvid(const DatasetOptions& options) {
  const fs::path base = fs::path(options.root) / "ilids-vid";
  return two_camera_dataset({"ilidsvid",
                             {base / "i-LIDS-VID" / "sequences", base / "sequences", base},
                             {"cam1", "cam2"},
                             "person",
                             "<root>/ilids-vid/i-LIDS-VID/sequences/{cam1,cam2}/personNNN/<frames>"},
                            options);
}

DatasetSplits prid2011(const DatasetOptions& options) {
  const fs::path base = fs::path(options.root) / "prid2011";
  return two_camera_dataset({"prid2011",
                             {base / "prid_2011" / "multi_shot", base / "multi_shot", base},
                             {"cam_a", "cam_b"},
                             "person_",
                             "<root>/prid2011/prid_2011/multi_shot/{cam_a,cam_b}/person_NNNN/<frames>"},
                            options);
}

DatasetSplits custom_video(const DatasetOptions& options) {
  const auto& c = options.custom;
  const fs::path root = c.image_root.empty() ? fs::path(options.root) : fs::path(c.image_root);
  if (!fs::is_directory(root)) throw IOError(root.string(), "image root of the custom_video dataset not found");
  if (c.train_list.empty() && c.query_list.empty())
    throw ConfigError("data.custom", "the custom_video dataset needs data.custom.train_list and/or "
                                     "data.custom.query_list + data.custom.gallery_list");
  const int min_frames = options.video.min_frames;
  DatasetSplits splits;
  splits.name = "custom_video";
  if (!c.train_list.empty()) set_train(splits, parse_custom_video_list(c.train_list, root, min_frames));
  if (!c.query_list.empty() || !c.gallery_list.empty()) {
    if (c.query_list.empty() || c.gallery_list.empty())
      throw ConfigError("data.custom", "query_list and gallery_list must be given together");
    splits.query = tracklet_records(parse_custom_video_list(c.query_list, root, min_frames));
    splits.gallery = tracklet_records(parse_custom_video_list(c.gallery_list, root, min_frames));
  }
  return splits;
}

std::vector<PersonSplit> random_person_splits(std::vector<int64_t> persons, int count, uint64_t seed) {
  if (persons.size() < 2) throw Error("random person splits need at least 2 persons");
  if (count < 1) throw Error("random person splits: the number of splits must be positive");
  std::sort(persons.begin(), persons.end());
  utils::Rng rng(seed);
  std::vector<PersonSplit> splits;
  const auto half = static_cast<std::ptrdiff_t>(persons.size() / 2);
  for (int s = 0; s < count; ++s) {
    auto order = persons;
    utils::shuffle(order, rng);
    PersonSplit split;
    split.train.assign(order.begin(), order.begin() + half);
    split.test.assign(order.begin() + half, order.end());
    std::sort(split.train.begin(), split.train.end());
    std::sort(split.test.begin(), split.test.end());
    splits.push_back(std::move(split));
  }
  return splits;
}

void write_person_splits(const std::string& path, const std::vector<PersonSplit>& splits, const std::string& header) {
  std::ostringstream out;
  out << "# " << header << "\n# one split per line: training persons | test persons\n";
  for (const auto& split : splits) {
    for (int64_t p : split.train) out << p << ' ';
    out << '|';
    for (int64_t p : split.test) out << ' ' << p;
    out << '\n';
  }
  utils::write_file_atomically(path, out.str(), "the person splits");
}

std::vector<PersonSplit> read_person_splits(const std::string& path, const std::vector<int64_t>& persons) {
  const std::set<int64_t> known(persons.begin(), persons.end());
  std::vector<PersonSplit> splits;
  for_each_list_line(path, "the person splits", true, [&](const std::string& line, const std::string& where) {
    const auto bar = line.find('|');
    if (bar == std::string::npos || line.find('|', bar + 1) != std::string::npos)
      throw IOError(where, "expected 'training persons | test persons'");
    PersonSplit split;
    std::set<int64_t> seen;
    const auto parse = [&](const std::string& text, std::vector<int64_t>& out) {
      std::istringstream in(text);
      std::string word;
      while (in >> word) {
        int64_t person = 0;
        if (!parse_integer(word, person)) throw IOError(where, "'" + word + "' is not a person number");
        if (!known.count(person))
          throw IOError(where, "person " + word + " is not among the dataset's persons seen by both cameras");
        if (!seen.insert(person).second) throw IOError(where, "person " + word + " appears twice");
        out.push_back(person);
      }
    };
    parse(line.substr(0, bar), split.train);
    parse(line.substr(bar + 1), split.test);
    if (split.train.empty() || split.test.empty()) throw IOError(where, "a split needs training and test persons");
    splits.push_back(std::move(split));
  });
  if (splits.empty()) throw IOError(path, "no split in the file");
  return splits;
}

}  // namespace reid::data
