#include "reid/data/records.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/data/image_io.h"

namespace reid::data {

RecordList make_record_list(std::vector<ImageRecord> records) {
  return std::make_shared<const std::vector<ImageRecord>>(std::move(records));
}

int64_t count_pids(const std::vector<ImageRecord>& records) {
  std::set<int64_t> pids;
  for (const auto& r : records) pids.insert(r.pid);
  return static_cast<int64_t>(pids.size());
}

int64_t count_cameras(const std::vector<ImageRecord>& records) {
  std::set<int64_t> cams;
  for (const auto& r : records) cams.insert(r.camid);
  return static_cast<int64_t>(cams.size());
}

std::vector<int64_t> relabel(std::vector<ImageRecord>& records) {
  std::map<int64_t, int64_t> labels;
  for (const auto& r : records) labels.emplace(r.pid, 0);
  int64_t next = 0;
  std::vector<int64_t> original;
  for (auto& entry : labels) {
    entry.second = next++;
    original.push_back(entry.first);
  }
  for (auto& r : records) r.pid = labels[r.pid];
  return original;
}

std::vector<int64_t> shared_identities(const DatasetSplits& splits) {
  const std::set<int64_t> train(splits.train_ids.begin(), splits.train_ids.end());
  const std::set<int64_t> distractors(splits.distractor_pids.begin(), splits.distractor_pids.end());
  std::set<int64_t> shared;
  for (const auto* split : {&splits.query, &splits.gallery})
    for (const auto& r : *split)
      if (train.count(r.pid) && !distractors.count(r.pid)) shared.insert(r.pid);
  return {shared.begin(), shared.end()};
}

void combine_all(DatasetSplits& splits) {
  splits.train.insert(splits.train.end(), splits.val.begin(), splits.val.end());
  splits.val.clear();
  relabel(splits.train);
  const int64_t offset = count_pids(splits.train);
  const std::set<int64_t> distractors(splits.distractor_pids.begin(), splits.distractor_pids.end());
  std::vector<ImageRecord> test;
  for (const auto* split : {&splits.query, &splits.gallery})
    for (const auto& r : *split)
      if (!distractors.count(r.pid)) test.push_back(r);
  relabel(test);
  for (auto& r : test) {
    r.pid += offset;
    splits.train.push_back(r);
  }
  splits.train_ids.clear();  // test identities join training on purpose
}

std::vector<ImageRecord> merge_training_sets(const std::vector<DatasetSplits>& datasets) {
  std::vector<ImageRecord> merged;
  int64_t pid_offset = 0, cam_offset = 0;
  for (const auto& dataset : datasets) {
    std::vector<ImageRecord> train = dataset.train;
    relabel(train);
    int64_t max_cam = -1;
    for (auto& r : train) {
      max_cam = std::max(max_cam, r.camid);
      r.pid += pid_offset;
      r.camid += cam_offset;
      merged.push_back(std::move(r));
    }
    pid_offset += count_pids(dataset.train);
    cam_offset += max_cam + 1;
  }
  return merged;
}

std::string statistics_table(const DatasetSplits& splits) {
  char line[160];
  std::string table = "dataset " + splits.name + "\n";
  std::snprintf(line, sizeof(line), "  %-8s | %7s | %8s | %7s\n", "subset", "# ids", "# images", "# cams");
  table += line;
  table += "  ---------+---------+----------+--------\n";
  auto row = [&](const char* name, const std::vector<ImageRecord>& records) {
    std::snprintf(line, sizeof(line), "  %-8s | %7lld | %8zu | %7lld\n", name,
                  static_cast<long long>(count_pids(records)), records.size(),
                  static_cast<long long>(count_cameras(records)));
    table += line;
  };
  row("train", splits.train);
  if (!splits.val.empty()) row("val", splits.val);
  row("query", splits.query);
  row("gallery", splits.gallery);
  return table;
}

void check_not_empty(const DatasetSplits& splits, bool need_train, bool need_test) {
  auto check = [&](const std::vector<ImageRecord>& records, const char* split) {
    if (records.empty())
      throw Error("dataset " + splits.name + ": the " + split + " split is empty");
  };
  if (need_train) check(splits.train, "train");
  if (need_test) {
    check(splits.query, "query");
    check(splits.gallery, "gallery");
  }
}

}  // namespace reid::data

namespace reid::data {

int64_t check_dataset_images(DatasetSplits& splits, bool train, bool test, int64_t max_pixels, bool skip) {
  int64_t dropped = 0;
  std::vector<std::pair<const char*, std::vector<ImageRecord>*>> parts;
  if (train) parts.emplace_back("training", &splits.train);
  if (test) {
    parts.emplace_back("query", &splits.query);
    parts.emplace_back("gallery", &splits.gallery);
  }
  for (auto& part : parts) {
    ImageCheck check = check_images(*part.second, max_pixels);
    if (check.bad.empty()) continue;
    std::size_t images = 0;  // a tracklet counts its frames
    for (const auto& r : *part.second) images += r.frames ? r.frames->size() : 1;
    const std::string count = std::to_string(check.bad.size()) + " of " + std::to_string(images) + " " + part.first +
                              " images of dataset " + splits.name;
    std::string first;
    for (std::size_t i = 0; i < std::min<std::size_t>(3, check.bad.size()); ++i)
      first += (i ? "; " : "") + check.bad[i];
    if (!skip)
      throw IOError(check.bad.front().substr(0, check.bad.front().find(": ")),
                    count + " cannot be read, found before training (" + first +
                        "); fix or remove them, or set data.skip_bad_images=true to leave them out");
    logger().warn("{} cannot be read and are left out (data.skip_bad_images): {}", count, first);
    dropped += static_cast<int64_t>(check.bad.size());
    *part.second = std::move(check.good);
    if (part.second == &splits.train) {
      // Identities may have vanished: renumber, keeping each label's dataset identity.
      const auto kept = relabel(splits.train);
      if (!splits.train_ids.empty()) {
        std::vector<int64_t> ids;
        for (int64_t label : kept) ids.push_back(splits.train_ids.at(static_cast<std::size_t>(label)));
        splits.train_ids = std::move(ids);
      }
    }
  }
  return dropped;
}

}  // namespace reid::data
