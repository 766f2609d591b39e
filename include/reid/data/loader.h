#pragma once
/// @file
/// A multi-threaded image loader: worker threads decode and augment whole batches into one
/// contiguous [B, 3, H, W] tensor (pinned when CUDA is used), a bounded queue keeps at most
/// `prefetch` batches ready, batches come out in order, and a worker's error is re-raised in the
/// caller with the file path. Augmentation randomness is seeded per (batch position, slot), so
/// the output does not depend on which thread loaded what.

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <torch/types.h>

#include "reid/data/image_io.h"
#include "reid/data/records.h"
#include "reid/data/tracklets.h"
#include "reid/data/transforms.h"

namespace reid::data {

/// Options of DataLoader.
struct LoaderOptions {
  /// Worker threads; 0 loads in the calling thread.
  int workers = 2;
  /// Batches kept ready ahead of the consumer.
  int prefetch = 4;
  /// Allocate batches in page-locked memory (only when CUDA is available).
  bool pin_memory = false;
  /// Leave unreadable images out of their batch (counted) instead of failing.
  bool skip_bad_images = false;
  /// Largest image decoded (width x height); see read_image().
  int64_t max_image_pixels = kDefaultMaxImagePixels;
  /// Run OpenCV single-threaded (cv::setNumThreads(1), a process-wide setting) so that its
  /// internal threads do not compete with the workers.
  bool limit_opencv_threads = true;
  /// Tracklet records (ImageRecord::frames): frames per clip and how they are chosen
  /// (sample_frames(); kAll is not a loader mode: extraction cuts tracklets into clips itself).
  int64_t seq_len = 4;
  FrameSampling sampling = FrameSampling::kEvenly;
};

/// A loaded batch.
struct Batch {
  /// [B, 3, H, W] float, normalised; tracklets: [B, seq_len, 3, H, W] clips.
  torch::Tensor images;
  /// int64 [B].
  torch::Tensor pids;
  /// int64 [B].
  torch::Tensor camids;
  /// Record index of each row.
  std::vector<int64_t> indices;
  /// Position of the batch in its run (as passed to start()).
  int64_t position = 0;
  /// Images of this batch that were skipped as unreadable.
  int64_t skipped = 0;
};

/// A batch to load: record indices, and the slot of its first image within the whole batch
/// (image i of the job is augmented as slot first_slot + i). A rank's share of a data-parallel
/// batch starts after the other ranks' images, so every image gets the augmentation it would
/// get in one process.
struct LoadJob {
  std::vector<int64_t> indices;
  int64_t first_slot = 0;
};

/// Loads batches of records through a Transform.
class DataLoader {
 public:
  DataLoader(RecordList records, Transform transform, LoaderOptions options = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Starts loading `batches` (record indices) in order, dropping whatever an earlier run had
  /// not delivered. Batch i of this run is augmented with seed mix_seed(seed, first_position + i).
  void start(std::vector<std::vector<int64_t>> batches, uint64_t seed, int64_t first_position = 0);
  /// start() with explicit slots (see LoadJob).
  void start_jobs(std::vector<LoadJob> jobs, uint64_t seed, int64_t first_position = 0);

  /// The next batch in order, or nullopt when the run is complete. Re-throws a worker's error.
  std::optional<Batch> next();

  /// Loads one batch synchronously in the calling thread.
  Batch load(const std::vector<int64_t>& indices, uint64_t seed, int64_t position, int64_t first_slot = 0) const;

  /// Images skipped as unreadable since construction.
  int64_t skipped() const;
  const RecordList& records() const { return records_; }
  const Transform& transform() const { return transform_; }

 private:
  struct Result {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  void work();

  RecordList records_;
  Transform transform_;
  LoaderOptions options_;
  std::vector<std::thread> threads_;
  mutable std::mutex mutex_;
  std::condition_variable work_ready_, result_ready_;
  bool stop_ = false;
  uint64_t generation_ = 0;
  std::vector<LoadJob> jobs_;
  uint64_t seed_ = 0;
  int64_t first_position_ = 0;
  std::size_t next_job_ = 0, delivered_ = 0;
  std::map<std::size_t, Result> ready_;
  mutable int64_t skipped_ = 0;
};

}  // namespace reid::data
