#pragma once
/// @file
/// Training samplers. A sampler turns the training records into the batches of each epoch; the
/// batches of epoch e are a pure function of (seed, e), so a run resumed from a saved
/// SamplerState continues exactly the sequence an uninterrupted run would have seen.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reid/core/registry.h"
#include "reid/data/records.h"

namespace reid::data {

/// Where a sampler is: the epoch it is in and how many of its batches were handed out.
struct SamplerState {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t position = 0;
};

/// Base class: plans one epoch at a time and hands its batches out in order.
class Sampler {
 public:
  explicit Sampler(uint64_t seed) : state_{seed, 0, 0} {}
  virtual ~Sampler() = default;

  /// The batches (record indices) of `epoch`. Does not change the sampler's state.
  virtual std::vector<std::vector<int64_t>> plan(int64_t epoch) const = 0;

  /// Next batch of the current epoch, or nullopt when it is exhausted (call next_epoch()).
  std::optional<std::vector<int64_t>> next();
  /// Moves to the start of the following epoch.
  void next_epoch();
  /// Batches of the current epoch not yet handed out.
  std::vector<std::vector<int64_t>> remaining();
  /// Number of batches in the current epoch.
  int64_t batches_in_epoch();
  /// Images per batch.
  virtual int64_t batch_size() const = 0;
  /// Consecutive images of a batch that belong together and must not be split between the
  /// processes of a data-parallel job (an identity's K images; 1 for the random sampler).
  virtual int64_t group_size() const { return 1; }

  SamplerState state() const { return state_; }
  void load_state(const SamplerState& state);

 private:
  const std::vector<std::vector<int64_t>>& current();
  SamplerState state_;
  int64_t planned_epoch_ = -1;
  std::vector<std::vector<int64_t>> plan_;
};

/// Shuffled images in batches of `batch_size` (the last short batch dropped if `drop_last`).
class RandomSampler : public Sampler {
 public:
  RandomSampler(int64_t num_records, int64_t batch_size, bool drop_last, uint64_t seed);
  std::vector<std::vector<int64_t>> plan(int64_t epoch) const override;
  int64_t batch_size() const override { return batch_size_; }

 private:
  int64_t num_records_, batch_size_;
  bool drop_last_;
};

/// P x K identity sampling (BoT's RandomIdentitySampler): every batch holds exactly
/// batch_size / K distinct identities with K images each. Identities with fewer than K images
/// are sampled with replacement. An epoch lasts until fewer than P identities have images left.
class IdentitySampler : public Sampler {
 public:
  /// `cross_camera`: build each identity's groups of K so that they cover as many of its cameras
  /// as possible (round-robin over cameras) instead of at random.
  IdentitySampler(RecordList records, int64_t batch_size, int64_t num_instances, uint64_t seed,
                  bool cross_camera = false);
  std::vector<std::vector<int64_t>> plan(int64_t epoch) const override;
  int64_t batch_size() const override { return batch_size_; }
  int64_t group_size() const override { return num_instances_; }

 private:
  RecordList records_;
  int64_t batch_size_, num_instances_;
  bool cross_camera_;
  std::vector<std::vector<int64_t>> by_pid_;  // record indices per identity label
};

/// What every registered sampler is built from besides the records.
struct SamplerOptions {
  int64_t batch_size = 64;
  /// Images per identity K (identity samplers).
  int64_t num_instances = 4;
  /// Drop the last incomplete batch (random sampler).
  bool drop_last = true;
  uint64_t seed = 0;
};

/// Registry of training samplers by name.
using SamplerRegistry = Registry<std::unique_ptr<Sampler>(RecordList, const SamplerOptions&)>;

/// Adds the built-in samplers: random, identity, cross_camera.
void register_builtin_samplers(SamplerRegistry& registry);

/// A registry holding the built-in samplers (built once; copy it to add your own).
const SamplerRegistry& builtin_samplers();

/// Builds the sampler named by `name` from the built-in registry (random, identity,
/// cross_camera); an unknown name throws reid::Error naming the valid ones.
std::unique_ptr<Sampler> make_sampler(const std::string& name, RecordList records, int64_t batch_size,
                                      int64_t num_instances, bool drop_last, uint64_t seed);

}  // namespace reid::data
