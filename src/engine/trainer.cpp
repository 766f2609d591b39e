#include "reid/engine/trainer.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/models/weights.h"
#include "reid/utils/strings.h"

namespace reid::engine {
namespace {

// The only process-wide state besides the logger: signal handlers can touch nothing else.
std::atomic<int> g_stop{0};

extern "C" void on_signal(int signal) {
  g_stop.store(signal);
  std::signal(signal, SIG_DFL);  // a second signal ends the process the usual way
}


// One data-parallel rank's part of a global batch: whole groups of `group` consecutive indices
// (an identity's K images), in equal shares. A last short batch (random sampler without
// drop_last) is cut to a multiple of the world size first.
data::LoadJob share(const std::vector<int64_t>& batch, int rank, int world) {
  const int64_t usable = static_cast<int64_t>(batch.size()) / world * world;
  const int64_t size = usable / world, first = size * rank;
  return {std::vector<int64_t>(batch.begin() + first, batch.begin() + first + size), first};
}

}  // namespace

// ---- signals ------------------------------------------------------------------------------------

void install_signal_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}
void request_stop() { g_stop.store(SIGINT); }
bool stop_requested() { return g_stop.load() != 0; }
int stop_signal() { return g_stop.load(); }
void clear_stop_request() { g_stop.store(0); }

// ---- StepMeter ----------------------------------------------------------------------------------

void StepMeter::add(const losses::LossResult& result) {
  std::vector<torch::Tensor> values{result.total.detach().to(torch::kDouble)};
  for (const auto& t : result.terms) values.push_back(t.second.to(torch::kDouble));
  for (const auto& t : result.stats) values.push_back(t.second.to(torch::kDouble));
  if (names_.empty()) {
    names_.push_back("loss");
    for (const auto& t : result.terms) names_.push_back(t.first);
    for (const auto& t : result.stats) names_.push_back(t.first);
  }
  TORCH_CHECK(values.size() == names_.size(), "the loss set changed its terms during training");
  const auto step = torch::stack(values);
  if (!window_.defined() || window_steps_ == 0) window_ = torch::zeros_like(step);
  if (!epoch_.defined() || epoch_steps_ == 0) epoch_ = torch::zeros_like(step);
  window_.add_(step);
  epoch_.add_(step);
  ++window_steps_;
  ++epoch_steps_;
}

std::vector<std::pair<std::string, double>> StepMeter::take(torch::Tensor& sum, int64_t& steps, Distributed& dist) {
  // Every rank takes part in the all-reduce, also one without steps (it contributes zeros).
  const bool have = steps > 0;
  auto mean = have ? sum / static_cast<double>(steps) : torch::zeros({static_cast<int64_t>(names_.size())}, torch::kDouble);
  mean = dist.all_reduce_mean(mean.to(dist.device())).to(torch::kCPU);
  steps = 0;
  std::vector<std::pair<std::string, double>> out;
  if (!have && !dist.is_distributed()) return out;
  const auto values = mean.contiguous();
  for (std::size_t i = 0; i < names_.size(); ++i) out.emplace_back(names_[i], values[static_cast<int64_t>(i)].item<double>());
  return out;
}

std::vector<std::pair<std::string, double>> StepMeter::take_window(Distributed& dist) {
  return take(window_, window_steps_, dist);
}

std::vector<std::pair<std::string, double>> StepMeter::take_epoch(Distributed& dist) {
  return take(epoch_, epoch_steps_, dist);
}

// ---- freeze-then-open ---------------------------------------------------------------------------

// During the first fixbase_epochs only the open layers train (and only their batch norms
// update statistics), as torchreid does.
struct Trainer::Gate {
  Gate(torch::nn::Module& model, const std::vector<std::string>& open) : model(model) {
    std::set<std::string> names;
    for (const auto& child : model.named_children()) names.insert(child.key());
    for (const auto& name : open)
      if (!names.count(name))
        throw ConfigError("solver.open_layers", "'" + name + "' is not a top-level layer of the model (layers: " +
                                                    utils::join(std::vector<std::string>(names.begin(), names.end())) + ")");
    open_layers = std::set<std::string>(open.begin(), open.end());
    for (const auto& p : model.parameters())
      if (!p.requires_grad()) frozen.insert(p.unsafeGetTensorImpl());
  }
  void apply(bool fixbase) {
    model.train();
    for (const auto& child : model.named_children()) {
      const bool open = !fixbase || open_layers.count(child.key());
      child.value()->train(open);
      for (auto& p : child.value()->parameters())
        if (!frozen.count(p.unsafeGetTensorImpl())) p.set_requires_grad(open);
    }
  }
  torch::nn::Module& model;
  std::set<std::string> open_layers;
  std::set<const void*> frozen;  // never trained (e.g. BNNeck's bias)
};

// ---- Trainer ------------------------------------------------------------------------------------

Trainer::Trainer(TrainerOptions options, TrainComponents components, Distributed& dist)
    : options_(std::move(options)),
      dist_(dist),
      model_(std::move(components.model)),
      loss_(std::move(components.loss)),
      optimizer_(std::move(components.optimizer)),
      sampler_(std::move(components.sampler)),
      records_(components.records) {
  TORCH_CHECK(model_ && loss_ && optimizer_.optimizer && sampler_, "the Trainer needs a model, a loss, an optimizer "
                                                                   "and a sampler");
  TORCH_CHECK(components.records && !components.records->empty(), "the Trainer needs training records");
  const int64_t unit = sampler_->group_size() * dist_.world_size();
  TORCH_CHECK(sampler_->batch_size() % unit == 0, "a batch of ", sampler_->batch_size(), " images does not split over ",
              dist_.world_size(), " processes in groups of ", sampler_->group_size());
  loader_ = std::make_unique<data::DataLoader>(components.records, data::Transform(components.transform),
                                               components.loader);
  gate_ = std::make_unique<Gate>(*model_, options_.open_layers());
  control_period_ = dist_.device().is_cuda() ? std::max<int64_t>(1, options_.log_period()) : 1;
  state_.sampler = sampler_->state();
  state_.world_size = dist_.world_size();

  checkpointer_.add("model", *model_);
  checkpointer_.add("optimizer", *optimizer_.optimizer);
  if (!loss_->parameters().empty()) checkpointer_.add("loss", *loss_);
  for (const auto& [name, optimizer] : loss_->auxiliary_optimizers()) checkpointer_.add(name, *optimizer);

  // Every rank starts from rank 0's weights; gradients are averaged over ranks during backward.
  broadcast_module(dist_, *model_);
  broadcast_module(dist_, *loss_);
  std::vector<std::pair<std::string, torch::Tensor>> trained;
  for (const auto& p : model_->named_parameters()) trained.emplace_back(p.key(), p.value());
  for (const auto& p : loss_->named_parameters()) trained.emplace_back("loss." + p.key(), p.value());
  for (const auto& p : trained) trained_.push_back(p.second);
  amp_ = options_.amp() && dist_.device().is_cuda();
  if (amp_ && options_.amp_dtype() == torch::kHalf) {
    scaler_ = LossScaler();
    checkpointer_.add("loss_scaler", *scaler_);
  }
  reducer_ = std::make_unique<GradientReducer>(dist_, std::move(trained), options_.bucket_mb());
  first_bad_ = torch::full({}, -1, torch::TensorOptions().dtype(torch::kLong).device(dist_.device()));
}

Trainer::~Trainer() = default;

void Trainer::add_hook(std::shared_ptr<TrainHook> hook) { hooks_.push_back(std::move(hook)); }

void Trainer::report(const IterationStats& stats) {
  for (auto& h : hooks_) h->iteration_logged(*this, stats);
}

void Trainer::report(const EpochStats& stats) {
  for (auto& h : hooks_) h->epoch_logged(*this, stats);
}

void Trainer::report(int64_t epoch, const std::string& dataset, const eval::EvalResult& result) {
  for (auto& h : hooks_) h->evaluated(*this, epoch, dataset, result);
}

double Trainer::epoch_seconds() const { return monotonic_seconds() - epoch_start_; }

std::pair<double, double> Trainer::take_wait_seconds() {
  const double data = data_wait_;
  data_wait_ = 0.0;
  return {data, reducer_->take_wait_seconds()};
}

void Trainer::resume(const std::string& path) {
  std::vector<RankState> ranks;
  state_ = checkpointer_.load(path, &ranks);
  checkpoint_path_ = path;
  try {
    models::check_finite(*model_, "the model");
  } catch (const Error& e) {
    throw IOError(path, std::string("not a good checkpoint: ") + e.what());
  }
  sampler_->load_state(state_.sampler);
  if (state_.world_size == dist_.world_size()) {
    if (static_cast<int>(ranks.size()) == dist_.world_size()) {
      const auto& own = ranks[static_cast<std::size_t>(dist_.rank())];
      auto generator = at::detail::getDefaultCPUGenerator();
      generator.set_state(own.rng);
      torch::NoGradGuard no_grad;
      for (auto& b : model_->named_buffers())
        if (own.buffers.count(b.key())) b.value().copy_(own.buffers.at(b.key()));
    }
  } else if (dist_.is_main()) {
    logger().warn("the checkpoint was written by {} process(es), this run has {}: training continues from the same "
                  "weights, optimizer state and batch sequence, but each process's batch share, batch-norm statistics "
                  "and random state differ, so the final weights will not equal those of an uninterrupted run",
                  state_.world_size, dist_.world_size());
  }
  state_.world_size = dist_.world_size();
}

void Trainer::save_checkpoint(const std::string& path) {
  auto ranks = gather_rank_states();
  with_consistent_buffers([&] {
    if (dist_.is_main()) {
      models::check_finite(*model_, "the model");
      checkpointer_.save(path, state_, ranks);
    }
  });
  checkpoint_path_ = path;
  checkpoint_epoch_ = epoch_;
}

void Trainer::update_checkpoint() {
  if (checkpoint_epoch_ == epoch_ && !checkpoint_path_.empty()) save_checkpoint(checkpoint_path_);
}

std::vector<RankState> Trainer::gather_rank_states() {
  if (!dist_.is_distributed()) return {};
  std::vector<RankState> ranks(static_cast<std::size_t>(dist_.world_size()));
  const auto rngs = dist_.all_gather(at::detail::getDefaultCPUGenerator().get_state().to(dist_.device()));
  for (std::size_t r = 0; r < ranks.size(); ++r) ranks[r].rng = rngs[r].to(torch::kCPU);
  for (const auto& b : model_->named_buffers()) {
    const auto all = dist_.all_gather(b.value().detach().contiguous());
    for (std::size_t r = 0; r < ranks.size(); ++r) ranks[r].buffers[b.key()] = all[r].to(torch::kCPU);
  }
  return ranks;
}

std::vector<std::pair<std::string, torch::Tensor>> Trainer::average_buffers_keep_local() {
  std::vector<std::pair<std::string, torch::Tensor>> saved;
  if (!dist_.is_distributed()) return saved;
  for (const auto& b : model_->named_buffers()) saved.emplace_back(b.key(), b.value().detach().clone());
  average_buffers(dist_, *model_);
  return saved;
}

void Trainer::restore_buffers(const std::vector<std::pair<std::string, torch::Tensor>>& saved) {
  if (saved.empty()) return;
  torch::NoGradGuard no_grad;
  auto buffers = model_->named_buffers();
  for (const auto& s : saved) buffers[s.first].copy_(s.second);
}

void Trainer::train() {
  interrupted_ = false;
  not_finite_ = false;
  const int64_t start_iteration = state_.iteration;
  try {
    for (auto& h : hooks_) h->before_train(*this);
    for (epoch_ = state_.epoch; epoch_ < options_.max_epochs(); ++epoch_) {
      run_epoch();
      if (interrupted_) break;
    }
  } catch (...) {
    keep_last_good_state(start_iteration);
    throw;
  }
  if (!interrupted_) epoch_ = options_.max_epochs() - 1;
  for (auto& h : hooks_) h->after_train(*this);
}

void Trainer::keep_last_good_state(int64_t start_iteration) {
  if (not_finite_ || dist_.is_distributed() || state_.iteration == start_iteration) return;
  if (epoch_finished_) {
    // A failing after_epoch hook (an evaluation): the epoch is complete, and state_ says so
    // already. Nothing to add when this epoch's checkpoint was written before the failure.
    if (checkpoint_epoch_ == epoch_) return;
  } else {
    // Inside the epoch: continue after the last finished batch, as after a stop request.
    state_.epoch = epoch_;
    state_.sampler = {sampler_->state().seed, epoch_, position_};
    state_.train_seconds += epoch_seconds();
    state_.images += epoch_images_ * dist_.world_size();
  }
  for (auto& h : hooks_) {
    try {
      h->on_failure(*this);
    } catch (const std::exception& e) {
      logger().error("after the failure below, the training state could not be saved: {}", e.what());
    }
  }
}

void Trainer::begin_epoch() {
  optimizer_.set_lr_factor(lr_factor(options_.schedule(), static_cast<int>(epoch_), options_.schedulers()));
  const bool fixbase = epoch_ < options_.fixbase_epochs();
  gate_->apply(fixbase);
  if (fixbase && epoch_ == state_.epoch && dist_.is_main())
    logger().info("epochs 1-{}: training only {}", options_.fixbase_epochs(), utils::join(options_.open_layers()));
  position_ = sampler_->state().position;
  batches_ = sampler_->batches_in_epoch();
  std::vector<data::LoadJob> jobs;
  for (const auto& batch : sampler_->remaining()) jobs.push_back(share(batch, dist_.rank(), dist_.world_size()));
  loader_->start_jobs(std::move(jobs), mix_seed(options_.seed(), static_cast<uint64_t>(epoch_)), position_);
  epoch_images_ = 0;
  epoch_start_ = monotonic_seconds();
}

void Trainer::run_epoch() {
  epoch_finished_ = false;
  begin_epoch();
  for (auto& h : hooks_) h->before_epoch(*this);
  while (true) {
    const double wait_start = monotonic_seconds();
    auto batch = loader_->next();
    data_wait_ += monotonic_seconds() - wait_start;
    if (!batch) break;
    run_step(*batch);
    ++state_.iteration;
    ++position_;
    epoch_images_ += batch->images.size(0);
    const bool stop = (state_.iteration % control_period_ == 0) && control_point();
    for (auto& h : hooks_) h->after_step(*this);
    if (stop) {
      // Where to continue: the same epoch, after this batch.
      state_.epoch = epoch_;
      state_.sampler = {sampler_->state().seed, epoch_, position_};
      state_.train_seconds += epoch_seconds();
      state_.images += epoch_images_ * dist_.world_size();
      interrupted_ = true;
      return;
    }
  }
  if (control_point()) interrupted_ = true;  // NaN check before anything is saved
  state_.train_seconds += epoch_seconds();
  state_.images += epoch_images_ * dist_.world_size();
  sampler_->next_epoch();
  state_.epoch = epoch_ + 1;
  state_.sampler = sampler_->state();
  epoch_finished_ = true;
  for (auto& h : hooks_) h->after_epoch(*this);
}

void Trainer::run_step(const data::Batch& batch) {
  const auto device = dist_.device();
  auto images = batch.images.to(device, options_.dtype(), /*non_blocking=*/true);
  if (options_.channels_last() && images.dim() == 4) images = images.contiguous(at::MemoryFormat::ChannelsLast);
  const auto labels = batch.pids.to(device, /*non_blocking=*/true);
  losses::LossResult losses;
  {
    AutocastGuard autocast(amp_, options_.amp_dtype());
    const auto output = model_->forward(images, labels, batch.camids.to(device, /*non_blocking=*/true));
    losses = loss_->forward(output, labels);
  }
  optimizer_.optimizer->zero_grad();
  loss_->zero_auxiliary_grad();
  reducer_->prepare();
  (scaler_ ? scaler_->scale(losses.total) : losses.total).backward();
  reducer_->finish();
  // float16: an overflowing step is skipped (the only read-back of a step; gradients are
  // averaged over ranks already, so every rank decides the same).
  const bool finite = scaler_ ? scaler_->unscale(trained_) : true;
  if (options_.grad_clip() > 0) clip_gradients(model_->parameters(), options_.grad_clip());
  if (finite) {
    optimizer_.optimizer->step();
    loss_->step_auxiliary();
  }
  if (scaler_) scaler_->update(finite);
  meter_.add(losses);
  // Remember the first non-finite loss without reading it back (checked at control points).
  const auto bad = torch::logical_and(first_bad_.lt(0), losses.total.detach().isfinite().logical_not());
  first_bad_ = torch::where(bad, torch::full_like(first_bad_, state_.iteration), first_bad_);
}

bool Trainer::control_point() {
  auto flags = torch::stack({first_bad_.ge(0).to(torch::kFloat), torch::full({}, stop_requested() ? 1.0f : 0.0f,
                                                                              first_bad_.options().dtype(torch::kFloat))});
  dist_.all_reduce_sum(flags);
  flags = flags.to(torch::kCPU);
  if (flags[0].item<float>() > 0) {
    not_finite_ = true;
    const int64_t iteration = first_bad_.item<int64_t>();
    const int64_t batch = iteration >= 0 ? position_ - (state_.iteration - iteration) + 1 : position_;
    const std::string where = iteration >= 0 ? "at epoch " + std::to_string(epoch_ + 1) + ", batch " +
                                                   std::to_string(batch) + " (iteration " +
                                                   std::to_string(iteration + 1) + ", lr " + fmt::format("{:.3g}", lr()) + ")"
                                             : "on another process";
    throw Error("the loss is not finite " + where + "; training stopped" +
                (checkpoint_path_.empty() ? std::string() : ", the last good checkpoint is " + checkpoint_path_));
  }
  if (flags[1].item<float>() <= 0) return false;
  // A stop request reached some ranks (a signal sent to one process of the job): every rank
  // stops after this step, and takes the job's signal as its own, so that every rank (and the
  // launcher) exits with the status of that signal, not as a failure.
  const auto signals = dist_.all_gather(
      torch::full({1}, static_cast<float>(stop_signal()), first_bad_.options().dtype(torch::kFloat)));
  int job_signal = 0;
  std::vector<std::string> signalled;
  for (std::size_t r = 0; r < signals.size(); ++r) {
    const int s = static_cast<int>(signals[r].item<float>());
    if (s == 0) continue;
    signalled.push_back(std::to_string(r));
    if (job_signal == 0 || s == SIGTERM) job_signal = s;  // SIGTERM wins over SIGINT
  }
  if (job_signal == 0) job_signal = SIGINT;
  if (dist_.is_distributed() && dist_.is_main())
    logger().warn("{} {} received {}: every rank stops after this step{}", signalled.size() == 1 ? "rank" : "ranks",
                  utils::join(signalled), job_signal == SIGTERM ? "SIGTERM" : job_signal == SIGINT ? "SIGINT" : "a stop request",
                  signalled.size() < signals.size() ? " (the others on request)" : "");
  int expected = 0;
  g_stop.compare_exchange_strong(expected, job_signal);
  return true;
}

}  // namespace reid::engine
