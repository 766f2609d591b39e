// Registers a loss term of its own, the contrastive loss (Hadsell, Chopra and LeCun, CVPR
// 2006), and trains OSNet with it next to the identity loss through LibReID's loop
// (app::train) on the built-in synthetic pedestrians: what a researcher does to try a new
// objective with the library's models, data, evaluation and checkpoints unchanged.
//
//   custom_loss [output_dir] [epochs]
#include <iostream>

#include <reid/config/loader.h>
#include <reid/core/error.h>
#include <reid/app/train.h>
#include <reid/losses/term.h>
#include <reid/losses/triplet.h>
#include <torch/torch.h>

namespace {

// For every pair of the batch: same identity d^2, different identities max(0, margin - d)^2,
// with d the euclidean distance of the L2-normalised features; averaged over the pairs and
// over the model's embeddings (every branch of a multi-branch model).
class ContrastiveLoss : public reid::losses::LossTermImpl {
 public:
  explicit ContrastiveLoss(double margin) : margin_(margin) {}

  reid::losses::TermValue evaluate(const reid::models::ReidOutput& output, const torch::Tensor& targets) override {
    using namespace reid::losses;
    const auto features = select_inputs(output, TermInput::kEmbeddings, {}, "contrastive");
    torch::Tensor positive_mean;
    const auto value = mean_over(features, [&](const torch::Tensor& f) {
      const auto x = torch::nn::functional::normalize(f, torch::nn::functional::NormalizeFuncOptions().dim(1));
      const auto d = pairwise_distance(x, x, Distance::kEuclidean);  // LibReID's one distance
      const auto same = targets.view({-1, 1}).eq(targets.view({1, -1})).to(d.scalar_type());
      const auto off_diagonal = 1.0 - torch::eye(d.size(0), d.options());
      const auto per_pair = same * d.pow(2) + (1.0 - same) * torch::relu(margin_ - d).pow(2);
      if (!positive_mean.defined())
        positive_mean = ((d * same * off_diagonal).sum() / (same * off_diagonal).sum().clamp_min(1.0)).detach();
      return (per_pair * off_diagonal).sum() / off_diagonal.sum();
    });
    // Diagnostics appear in the log, metrics.csv and TensorBoard next to the built-in ones.
    return {value, {{"positive_distance", positive_mean}}};
  }

 private:
  double margin_;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string output = argc > 1 ? argv[1] : "output/custom_loss";
    const std::string epochs = argc > 2 ? argv[2] : "4";
    const reid::Config config = reid::config::load_config(
        "", {"model.name=osnet_x0_25", "data.sources=[synthetic]", "data.targets=[synthetic]", "data.height=64",
             "data.width=32", "data.synthetic.train_ids=16", "data.synthetic.test_ids=8", "data.batch_size=16",
             "data.workers=1", "sampler.name=identity", "sampler.num_instances=4", "loss.names=[ce, contrastive]",
             "loss.contrastive.margin=1.0", "loss.contrastive.weight=1.0",
             "solver.base_lr=0.003", "solver.max_epochs=" + epochs, "solver.milestones=[]", "solver.log_period=10",
             "test.batch_size=64", "test.metric=cosine", "output_dir=" + output});

    reid::app::TrainSetup setup;
    // The term reads its own options from its YAML block, loss.contrastive (the loss set reads
    // `weight` and rejects any key no one read, with a did-you-mean); LossSetOptions also gives
    // what the library knows (identities, the model's embeddings) for terms that need it.
    setup.registries.losses.add("contrastive", [](const reid::losses::LossSetOptions& options) {
      const double margin = options.own().number("margin", 1.0);
      if (!(margin > 0.0)) throw reid::ConfigError("loss.contrastive.margin", "must be positive");
      return std::make_shared<ContrastiveLoss>(margin);
    });
    const auto result = reid::app::train(config, setup);
    for (const auto& r : result.results)
      std::cout << "osnet_x0_25 with ce + contrastive on " << r.first << ": rank-1 " << 100.0 * r.second.cmc[0]
                << "%, mAP " << 100.0 * r.second.mAP << "%\n";
    return result.results.empty() ? 1 : 0;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
}
