#include "reid/data/loader.h"

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/core/runtime.h"
#include "reid/data/image_io.h"

namespace reid::data {

DataLoader::DataLoader(RecordList records, Transform transform, LoaderOptions options)
    : records_(std::move(records)), transform_(std::move(transform)), options_(options) {
  TORCH_CHECK(records_, "DataLoader needs records");
  TORCH_CHECK(options_.workers >= 0 && options_.prefetch >= 1, "workers must be >= 0 and prefetch >= 1");
  if (options_.limit_opencv_threads) cv::setNumThreads(1);
  if (options_.pin_memory && !torch::cuda::is_available()) options_.pin_memory = false;
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { work(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_ready_.notify_all();
  for (auto& thread : threads_) thread.join();
}

void DataLoader::start(std::vector<std::vector<int64_t>> batches, uint64_t seed, int64_t first_position) {
  std::vector<LoadJob> jobs;
  jobs.reserve(batches.size());
  for (auto& batch : batches) jobs.push_back({std::move(batch), 0});
  start_jobs(std::move(jobs), seed, first_position);
}

void DataLoader::start_jobs(std::vector<LoadJob> batches, uint64_t seed, int64_t first_position) {
  for (const auto& batch : batches)
    for (int64_t index : batch.indices)
      TORCH_CHECK(index >= 0 && index < static_cast<int64_t>(records_->size()), "record index ", index,
                  " out of range [0, ", records_->size(), ")");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    jobs_ = std::move(batches);
    seed_ = seed;
    first_position_ = first_position;
    next_job_ = 0;
    delivered_ = 0;
    ready_.clear();
  }
  work_ready_.notify_all();
}

Batch DataLoader::load(const std::vector<int64_t>& indices, uint64_t seed, int64_t position,
                       int64_t first_slot) const {
  const auto& o = transform_.options();
  const int64_t n = static_cast<int64_t>(indices.size());
  auto tensor_options = torch::TensorOptions().dtype(torch::kFloat).pinned_memory(options_.pin_memory);
  Batch batch;
  batch.position = position;
  // Tracklets load as clips of seq_len frames: [n, seq_len, 3, H, W].
  const bool clips = n > 0 && (*records_)[static_cast<std::size_t>(indices.front())].frames != nullptr;
  const int64_t length = clips ? options_.seq_len : 1;
  TORCH_CHECK(length >= 1, "clips need at least one frame (seq_len ", length, ")");
  batch.images = clips ? torch::empty({n, length, 3, o.height, o.width}, tensor_options)
                       : torch::empty({n, 3, o.height, o.width}, tensor_options);
  const int64_t stride = 3LL * o.height * o.width * length;
  float* data = batch.images.data_ptr<float>();
  const uint64_t batch_seed = mix_seed(seed, static_cast<uint64_t>(position));
  std::vector<int64_t> pids, camids;
  int64_t row = 0;
  for (int64_t slot = 0; slot < n; ++slot) {
    const ImageRecord& record = (*records_)[static_cast<std::size_t>(indices[static_cast<std::size_t>(slot)])];
    const uint64_t slot_seed = mix_seed(batch_seed, static_cast<uint64_t>(first_slot + slot));
    Rng rng(slot_seed);
    if ((record.frames != nullptr) != clips)
      throw Error("a batch mixes tracklets and images (record " + record.path + ")");
    try {
      if (!clips) {
        transform_.apply(read_image(record.path, options_.max_image_pixels), data + row * stride, rng);
      } else {
        // The clip's frames are drawn from their own stream; every frame is augmented with the
        // same draws (one flip, crop and erasing for the whole clip).
        Rng frame_rng(mix_seed(slot_seed, 0x636c6970ULL));
        const auto clip = sample_frames(static_cast<int64_t>(record.frames->size()), length, options_.sampling, frame_rng).at(0);
        for (int64_t f = 0; f < length; ++f) {
          Rng augment(slot_seed);
          const auto& path = (*record.frames)[static_cast<std::size_t>(clip[static_cast<std::size_t>(f)])];
          transform_.apply(read_image(path, options_.max_image_pixels), data + row * stride + f * (stride / length),
                           augment);
        }
      }
    } catch (const IOError&) {
      if (!options_.skip_bad_images) throw;
      ++batch.skipped;
      continue;
    } catch (const std::exception& e) {
      const IOError error(record.path, std::string("cannot load the image: ") + e.what());
      if (!options_.skip_bad_images) throw error;
      ++batch.skipped;
      continue;
    }
    pids.push_back(record.pid);
    camids.push_back(record.camid);
    batch.indices.push_back(indices[static_cast<std::size_t>(slot)]);
    ++row;
  }
  if (row < n) batch.images = batch.images.narrow(0, 0, row);
  batch.pids = torch::tensor(pids, torch::kLong);
  batch.camids = torch::tensor(camids, torch::kLong);
  if (batch.skipped > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    skipped_ += batch.skipped;
  }
  return batch;
}

void DataLoader::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    // Take the next job once it falls inside the prefetch window.
    work_ready_.wait(lock, [&] {
      return stop_ || (next_job_ < jobs_.size() && next_job_ < delivered_ + static_cast<std::size_t>(options_.prefetch));
    });
    if (stop_) return;
    const std::size_t job = next_job_++;
    const uint64_t generation = generation_;
    const LoadJob work = jobs_[job];
    const uint64_t seed = seed_;
    const int64_t position = first_position_ + static_cast<int64_t>(job);
    lock.unlock();
    Result result;
    try {
      result.batch = load(work.indices, seed, position, work.first_slot);
    } catch (...) {
      result.error = std::current_exception();
    }
    lock.lock();
    if (generation == generation_) {
      ready_.emplace(job, std::move(result));
      result_ready_.notify_all();
    }
  }
}

std::optional<Batch> DataLoader::next() {
  if (threads_.empty()) {
    LoadJob work;
    int64_t position = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (delivered_ >= jobs_.size()) return std::nullopt;
      work = jobs_[delivered_];
      position = first_position_ + static_cast<int64_t>(delivered_);
      ++delivered_;
    }
    return load(work.indices, seed_, position, work.first_slot);
  }
  std::unique_lock<std::mutex> lock(mutex_);
  if (delivered_ >= jobs_.size()) return std::nullopt;
  const std::size_t wanted = delivered_;
  result_ready_.wait(lock, [&] { return ready_.count(wanted) > 0; });
  Result result = std::move(ready_.at(wanted));
  ready_.erase(wanted);
  ++delivered_;
  if (result.error) {
    // Stop the run: nothing after a failed batch is delivered.
    ++generation_;
    jobs_.clear();
    next_job_ = delivered_ = 0;
    ready_.clear();
    lock.unlock();
    work_ready_.notify_all();
    std::rethrow_exception(result.error);
  }
  lock.unlock();
  work_ready_.notify_all();
  return std::move(result.batch);
}

int64_t DataLoader::skipped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skipped_;
}

}  // namespace reid::data
