// Registers a backbone of its own and trains it through LibReID's loop (app::train) on the
// built-in synthetic pedestrians: what a researcher does to try a new architecture with the
// library's data, losses, evaluation, checkpoints and multi-process training unchanged.
//
//   custom_model [output_dir] [epochs]
#include <iostream>

#include <reid/config/loader.h>
#include <reid/app/train.h>
#include <reid/models/model.h>
#include <reid/models/norm.h>
#include <torch/torch.h>

namespace {

// A small all-convolutional backbone: three stride-2 stages. Its batch norms are LibReID's
// (reid::models::BatchNorm2d, a drop-in for torch::nn::BatchNorm2d) so that model.sync_bn works.
class TinyNetImpl : public reid::models::ReidModelImpl {
 public:
  explicit TinyNetImpl(const reid::models::ModelOptions& options) : ReidModelImpl("tiny_net") {
    int64_t in = 3;
    for (int64_t out : {32, 64, 128}) {
      stages->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(2).padding(1).bias(false)));
      stages->push_back(reid::models::BatchNorm2d(out));
      stages->push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
      in = out;
    }
    register_module("stages", stages);
    head_.build(*this, /*in_channels=*/in, options.head());
  }
  torch::Tensor featuremaps(const torch::Tensor& images) override { return stages->forward(images); }

  torch::nn::Sequential stages;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string output = argc > 1 ? argv[1] : "output/custom_model";
    const std::string epochs = argc > 2 ? argv[2] : "4";
    const reid::Config config = reid::config::load_config(
        "", {"model.name=tiny_net", "data.sources=[synthetic]", "data.targets=[synthetic]", "data.height=64",
             "data.width=32", "data.synthetic.train_ids=16", "data.synthetic.test_ids=8", "data.batch_size=16",
             "data.workers=1", "sampler.name=identity", "sampler.num_instances=4", "loss.names=[ce,triplet]",
             "solver.base_lr=0.003", "solver.max_epochs=" + epochs, "solver.milestones=[]", "solver.log_period=10",
             "test.batch_size=64", "output_dir=" + output});

    reid::app::TrainSetup setup;
    setup.registries.models.add("tiny_net", [](const reid::models::ModelOptions& o) -> reid::models::ReidModel {
      return std::make_shared<TinyNetImpl>(o);
    });
    setup.distributed = reid::engine::distributed_options_from_environment();  // torchrun-style launch works too
    const auto result = reid::app::train(config, setup);
    for (const auto& r : result.results)
      std::cout << "tiny_net on " << r.first << ": rank-1 " << 100.0 * r.second.cmc[0] << "%, mAP "
                << 100.0 * r.second.mAP << "%\n";
    return result.results.empty() ? 1 : 0;
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 1;
  }
}
