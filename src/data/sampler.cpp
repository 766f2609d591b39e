#include "reid/data/sampler.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "reid/core/error.h"
#include "reid/core/runtime.h"
#include "reid/utils/random.h"

namespace reid::data {
namespace {

using utils::Rng;
using utils::shuffle;
using utils::uniform_index;

}  // namespace

const std::vector<std::vector<int64_t>>& Sampler::current() {
  if (planned_epoch_ != state_.epoch) {
    plan_ = plan(state_.epoch);
    planned_epoch_ = state_.epoch;
  }
  return plan_;
}

std::optional<std::vector<int64_t>> Sampler::next() {
  const auto& batches = current();
  if (state_.position >= static_cast<int64_t>(batches.size())) return std::nullopt;
  return batches[static_cast<std::size_t>(state_.position++)];
}

void Sampler::next_epoch() {
  ++state_.epoch;
  state_.position = 0;
}

std::vector<std::vector<int64_t>> Sampler::remaining() {
  const auto& batches = current();
  std::vector<std::vector<int64_t>> out(batches.begin() + std::min<int64_t>(state_.position, batches.size()),
                                        batches.end());
  state_.position = static_cast<int64_t>(batches.size());
  return out;
}

int64_t Sampler::batches_in_epoch() { return static_cast<int64_t>(current().size()); }

void Sampler::load_state(const SamplerState& state) {
  if (state.seed != state_.seed)
    throw Error("sampler state was saved with seed " + std::to_string(state.seed) + ", this run uses seed " +
                std::to_string(state_.seed));
  state_ = state;
}

RandomSampler::RandomSampler(int64_t num_records, int64_t batch_size, bool drop_last, uint64_t seed)
    : Sampler(seed), num_records_(num_records), batch_size_(batch_size), drop_last_(drop_last) {
  if (batch_size <= 0) throw Error("batch size must be positive");
  if (num_records <= 0) throw Error("the random sampler has no records to sample");
}

std::vector<std::vector<int64_t>> RandomSampler::plan(int64_t epoch) const {
  Rng rng(mix_seed(state().seed, static_cast<uint64_t>(epoch)));
  std::vector<int64_t> order(static_cast<std::size_t>(num_records_));
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, rng);
  std::vector<std::vector<int64_t>> batches;
  for (int64_t start = 0; start < num_records_; start += batch_size_) {
    const int64_t end = std::min(num_records_, start + batch_size_);
    if (drop_last_ && end - start < batch_size_) break;
    batches.emplace_back(order.begin() + start, order.begin() + end);
  }
  return batches;
}

IdentitySampler::IdentitySampler(RecordList records, int64_t batch_size, int64_t num_instances, uint64_t seed,
                                 bool cross_camera)
    : Sampler(seed),
      records_(std::move(records)),
      batch_size_(batch_size),
      num_instances_(num_instances),
      cross_camera_(cross_camera) {
  if (num_instances <= 0 || batch_size % num_instances != 0)
    throw Error("identity sampler: batch size " + std::to_string(batch_size) +
                " (data.batch_size) is not a positive multiple of K = " + std::to_string(num_instances) +
                " images per identity (sampler.num_instances)");
  std::map<int64_t, std::vector<int64_t>> groups;
  for (std::size_t i = 0; i < records_->size(); ++i) groups[(*records_)[i].pid].push_back(static_cast<int64_t>(i));
  for (auto& group : groups) by_pid_.push_back(std::move(group.second));
  const int64_t p = batch_size / num_instances;
  if (static_cast<int64_t>(by_pid_.size()) < p)
    throw Error("identity sampler: a batch needs " + std::to_string(p) + " identities but the training set has " +
                std::to_string(by_pid_.size()));
}

std::vector<std::vector<int64_t>> IdentitySampler::plan(int64_t epoch) const {
  Rng rng(mix_seed(state().seed, static_cast<uint64_t>(epoch)));
  const std::size_t k = static_cast<std::size_t>(num_instances_);
  // Per identity: its images cut into groups of K.
  std::vector<std::vector<std::vector<int64_t>>> chunks(by_pid_.size());
  for (std::size_t id = 0; id < by_pid_.size(); ++id) {
    std::vector<int64_t> pool = by_pid_[id];
    if (pool.size() < k) {
      // Too few images: draw K with replacement (distinct ones first).
      shuffle(pool, rng);
      while (pool.size() < k) pool.push_back(by_pid_[id][uniform_index(rng, by_pid_[id].size())]);
    } else if (cross_camera_) {
      // Round-robin over the cameras, each camera's images shuffled.
      std::map<int64_t, std::vector<int64_t>> cams;
      for (int64_t index : pool) cams[(*records_)[static_cast<std::size_t>(index)].camid].push_back(index);
      std::vector<std::vector<int64_t>> lists;
      for (auto& cam : cams) {
        shuffle(cam.second, rng);
        lists.push_back(std::move(cam.second));
      }
      shuffle(lists, rng);
      pool.clear();
      for (std::size_t round = 0; pool.size() < by_pid_[id].size(); ++round)
        for (const auto& list : lists)
          if (round < list.size()) pool.push_back(list[round]);
    } else {
      shuffle(pool, rng);
    }
    for (std::size_t start = 0; start + k <= pool.size(); start += k)
      chunks[id].emplace_back(pool.begin() + static_cast<std::ptrdiff_t>(start),
                              pool.begin() + static_cast<std::ptrdiff_t>(start + k));
  }
  // Draw P identities with groups left, take one group from each; stop when fewer than P remain.
  const std::size_t p = static_cast<std::size_t>(batch_size_ / num_instances_);
  std::vector<std::size_t> next(chunks.size(), 0);
  std::vector<std::size_t> available;
  for (std::size_t id = 0; id < chunks.size(); ++id)
    if (!chunks[id].empty()) available.push_back(id);
  std::vector<std::vector<int64_t>> batches;
  while (available.size() >= p) {
    // Partial Fisher-Yates: the first P entries become a uniform random choice.
    for (std::size_t i = 0; i < p; ++i) {
      const std::size_t j = i + uniform_index(rng, available.size() - i);
      std::swap(available[i], available[j]);
    }
    std::vector<int64_t> batch;
    for (std::size_t i = 0; i < p; ++i) {
      const std::size_t id = available[i];
      const auto& group = chunks[id][next[id]++];
      batch.insert(batch.end(), group.begin(), group.end());
    }
    batches.push_back(std::move(batch));
    available.erase(std::remove_if(available.begin(), available.end(),
                                   [&](std::size_t id) { return next[id] >= chunks[id].size(); }),
                    available.end());
  }
  return batches;
}

void register_builtin_samplers(SamplerRegistry& registry) {
  registry.add("random", [](RecordList records, const SamplerOptions& o) -> std::unique_ptr<Sampler> {
    return std::make_unique<RandomSampler>(static_cast<int64_t>(records->size()), o.batch_size, o.drop_last, o.seed);
  });
  registry.add("identity", [](RecordList records, const SamplerOptions& o) -> std::unique_ptr<Sampler> {
    return std::make_unique<IdentitySampler>(std::move(records), o.batch_size, o.num_instances, o.seed, false);
  });
  registry.add("cross_camera", [](RecordList records, const SamplerOptions& o) -> std::unique_ptr<Sampler> {
    return std::make_unique<IdentitySampler>(std::move(records), o.batch_size, o.num_instances, o.seed, true);
  });
}

const SamplerRegistry& builtin_samplers() {
  static const SamplerRegistry registry = [] {
    SamplerRegistry r("sampler");
    register_builtin_samplers(r);
    return r;
  }();
  return registry;
}

std::unique_ptr<Sampler> make_sampler(const std::string& name, RecordList records, int64_t batch_size,
                                      int64_t num_instances, bool drop_last, uint64_t seed) {
  return builtin_samplers().create(name, std::move(records), SamplerOptions{batch_size, num_instances, drop_last, seed});
}

}  // namespace reid::data
