#include "reid/engine/hooks.h"

#include <chrono>
#include <filesystem>

#include <torch/torch.h>

#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/models/weights.h"
#include "reid/utils/strings.h"

namespace fs = std::filesystem;

namespace reid::engine {
// ---- logging ------------------------------------------------------------------------------------

LoggingHook::LoggingHook(std::shared_ptr<Recorder> recorder) : recorder_(std::move(recorder)) {}

void LoggingHook::before_train(Trainer& trainer) { trainer.take_wait_seconds(); }

void LoggingHook::before_epoch(Trainer& trainer) {
  // The previous epoch's metrics row is complete (its evaluation, if any, has been recorded).
  if (recorder_) recorder_->flush();
  window_start_ = monotonic_seconds();
  window_images_ = last_images_ = 0;
  data_wait_ = comm_wait_ = epoch_data_wait_ = epoch_comm_wait_ = 0.0;
}

void LoggingHook::after_step(Trainer& trainer) {
  const auto [data, comm] = trainer.take_wait_seconds();
  data_wait_ += data;
  comm_wait_ += comm;
  epoch_data_wait_ += data;
  epoch_comm_wait_ += comm;
  window_images_ += trainer.epoch_images() - last_images_;
  last_images_ = trainer.epoch_images();
  const int64_t period = trainer.options().log_period();
  if (trainer.batch() % period != 0 && trainer.batch() != trainer.batches()) return;

  auto& dist = trainer.dist();
  const auto values = trainer.meter().take_window(dist);  // collective
  const double elapsed = std::max(monotonic_seconds() - window_start_, 1e-9);
  IterationStats stats;
  stats.epoch = trainer.epoch() + 1;
  stats.iteration = trainer.state().iteration;
  stats.batch = trainer.batch();
  stats.batches = trainer.batches();
  stats.lr = trainer.lr();
  if (!values.empty()) {
    stats.loss = values.front().second;
    stats.terms.assign(values.begin() + 1, values.end());
  }
  stats.images_per_second = static_cast<double>(window_images_ * dist.world_size()) / elapsed;
  stats.data_fraction = data_wait_ / elapsed;
  const double per_step = trainer.epoch_seconds() / std::max<int64_t>(1, trainer.batch() - 0);
  stats.eta_seconds = per_step * static_cast<double>((trainer.batches() - trainer.batch()) +
                                                     (trainer.options().max_epochs() - trainer.epoch() - 1) *
                                                         trainer.batches());
  if (dist.is_main()) {
    std::string terms;
    for (const auto& t : stats.terms) terms += fmt::format(" {} {:.4f}", t.first, t.second);
    const std::string comm_text =
        dist.is_distributed() ? fmt::format(" | comm {:.0f}%", 100.0 * comm_wait_ / elapsed) : std::string();
    logger().info("epoch {}/{} batch {}/{} | loss {:.4f} |{} | lr {:.2e} | {:.0f} img/s | data {:.0f}%{} | eta {}",
                  stats.epoch, trainer.options().max_epochs(), stats.batch, stats.batches, stats.loss, terms, stats.lr,
                  stats.images_per_second, 100.0 * stats.data_fraction, comm_text,
                  utils::format_duration(stats.eta_seconds));
    if (recorder_) recorder_->iteration(stats);
    trainer.report(stats);
  }
  window_start_ = monotonic_seconds();
  window_images_ = 0;
  data_wait_ = comm_wait_ = 0.0;
}

void LoggingHook::after_epoch(Trainer& trainer) {
  auto& dist = trainer.dist();
  const auto values = trainer.meter().take_epoch(dist);  // collective
  const double seconds = std::max(trainer.epoch_seconds(), 1e-9);
  EpochStats stats;
  stats.epoch = trainer.epoch() + 1;
  stats.lr = trainer.lr();
  if (!values.empty()) {
    stats.loss = values.front().second;
    stats.terms.assign(values.begin() + 1, values.end());
  }
  stats.images_per_second = static_cast<double>(trainer.epoch_images() * dist.world_size()) / seconds;
  stats.seconds = seconds;
  auto skipped = torch::full({1}, static_cast<double>(trainer.skipped_images()),
                             torch::TensorOptions().dtype(torch::kDouble).device(dist.device()));
  dist.all_reduce_sum(skipped);  // collective: every rank
  const auto skipped_total = static_cast<int64_t>(skipped.item<double>());
  if (!dist.is_main()) return;
  if (skipped_total > skipped_)
    logger().warn("epoch {}: {} unreadable training images skipped (data.skip_bad_images; {} in all)", stats.epoch,
                  skipped_total - skipped_, skipped_total);
  skipped_ = skipped_total;
  for (const auto& [term, warning] : trainer.loss().epoch_warnings(stats.terms))
    if (warned_.insert(term).second) logger().warn("epoch {}: {}", stats.epoch, warning);
  if (recorder_) recorder_->epoch(stats);
  trainer.report(stats);
  const std::string comm_text = dist.is_distributed()
                                    ? fmt::format(", {:.0f}% waiting for gradients", 100.0 * epoch_comm_wait_ / seconds)
                                    : std::string();
  logger().info("epoch {} done in {} ({:.0f} img/s, {:.0f}% waiting for data{})", stats.epoch,
                utils::format_duration(seconds), stats.images_per_second, 100.0 * epoch_data_wait_ / seconds,
                comm_text);
}

void LoggingHook::after_train(Trainer& trainer) {
  if (recorder_) recorder_->flush();
}

// ---- checkpoints --------------------------------------------------------------------------------

CheckpointHook::CheckpointHook(std::string output_dir, int64_t period)
    : output_dir_(std::move(output_dir)),
      path_((fs::path(output_dir_) / "checkpoints" / "last.ckpt").string()),
      period_(period) {}

std::string CheckpointHook::final_weights() const { return (fs::path(output_dir_) / "model_final.pt").string(); }

void CheckpointHook::after_epoch(Trainer& trainer) {
  const int64_t done = trainer.epoch() + 1;
  const bool last = trainer.last_epoch();
  if (!last && !(period_ > 0 && done % period_ == 0)) return;
  // Before any evaluation: a failing evaluation must never cost the training.
  trainer.save_checkpoint(path_);
  if (last) {
    trainer.with_consistent_buffers([&] {
      if (trainer.dist().is_main()) {
        models::check_finite(trainer.model(), "the model");
        models::save_weights(trainer.model(), final_weights());
      }
    });
  }
}

void CheckpointHook::after_train(Trainer& trainer) {
  if (!trainer.interrupted()) return;
  trainer.save_checkpoint(path_);
  if (trainer.dist().is_main())
    logger().warn("interrupted at epoch {}, batch {}: checkpoint written to {}; continue with --resume",
                  trainer.epoch() + 1, trainer.batch(), path_);
}

void CheckpointHook::on_failure(Trainer& trainer) {
  trainer.save_checkpoint(path_);
  const bool whole = trainer.state().sampler.position == 0;
  logger().warn("training stopped by the error below {}: checkpoint written to {}; once the cause is fixed, "
                "continue with --resume",
                whole ? "after epoch " + std::to_string(trainer.state().epoch)
                      : "at epoch " + std::to_string(trainer.epoch() + 1) + ", batch " + std::to_string(trainer.batch()),
                path_);
}

// ---- evaluation ---------------------------------------------------------------------------------

EvaluationHook::EvaluationHook(std::vector<data::DatasetSplits> targets, EvaluationOptions evaluation,
                               EvaluationHookOptions options, std::shared_ptr<Recorder> recorder)
    : targets_(std::move(targets)),
      evaluation_(std::move(evaluation)),
      options_(std::move(options)),
      recorder_(std::move(recorder)) {}

void EvaluationHook::after_epoch(Trainer& trainer) {
  const int64_t done = trainer.epoch() + 1;
  if (targets_.empty() || trainer.interrupted()) return;
  if (!trainer.last_epoch() && !(options_.period > 0 && done % options_.period == 0)) return;
  auto& dist = trainer.dist();
  auto& state = trainer.state();
  bool improved = false;
  trainer.with_consistent_buffers([&] {
    results_ = evaluate_targets(trainer.model(), targets_, evaluation_, "", &dist);
    // Only the main rank has metrics; every rank keeps the same best-model state.
    auto metric = torch::full({1}, dist.is_main() ? options_.metrics.create(options_.best_metric, results_.at(targets_.front().name))
                                                  : 0.0,
                              torch::TensorOptions().dtype(torch::kDouble).device(dist.device()));
    dist.broadcast({metric});
    const double value = metric.item<double>();
    if (value > state.best_metric) {
      state.best_metric = value;
      state.best_epoch = done;
      improved = true;
      if (dist.is_main()) {
        models::check_finite(trainer.model(), "the model");
        models::save_weights(trainer.model(), (fs::path(options_.output_dir) / "model_best.pt").string());
        logger().info("new best {} {:.2f}% at epoch {}: model_best.pt", options_.best_metric, 100.0 * value, done);
      }
    }
  });
  if (dist.is_main()) {
    for (const auto& r : results_) {
      if (recorder_) recorder_->evaluation(done, r.first, r.second);
      trainer.report(done, r.first, r.second);
    }
  }
  if (improved) trainer.update_checkpoint();  // the checkpoint of this epoch records the new best
  if (recorder_) recorder_->flush();
}

}  // namespace reid::engine
