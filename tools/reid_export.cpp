// reid-export: a trained model as ONNX (onnxruntime, OpenCV DNN, TensorRT) and / or TorchScript
// (torch.jit.load in Python, torch::jit::load in C++), with the preprocessing in its metadata.
#include <iostream>

#include "cli.h"
#include "reid/deploy/export.h"

int main(int argc, char** argv) {
  return reid::tools::run_main([&]() -> int {
    CLI::App app{"reid-export: export a person re-identification model to ONNX / TorchScript"};
    reid::tools::CommonOptions options;
    std::string weights;
    reid::deploy::ExportOptions exported;
    bool keep_batchnorm = false;
    reid::tools::add_common_options(app, options);
    app.add_option("--weights", weights, "Trained weights (a state dict from reid-train or Python)")->required();
    app.add_option("--onnx", exported.onnx, "ONNX file to write");
    app.add_option("--torchscript", exported.torchscript, "TorchScript file to write");
    app.add_option("--opset", exported.opset, "ONNX operator set, 13 to 17 (default 13)");
    app.add_flag("--keep-batchnorm", keep_batchnorm, "Do not fold batch norms into the convolutions");
    if (const int code = reid::tools::parse_command_line(app, argc, argv); code >= 0) return code;
    if (exported.onnx.empty() && exported.torchscript.empty())
      throw reid::tools::UsageError("give --onnx and/or --torchscript");
    exported.fold_batchnorm = !keep_batchnorm;
    const reid::Config config = reid::tools::load_config(options);
    if (reid::tools::prepare_run(config, options, "reid-export", "")) return 0;
    const auto traced = reid::deploy::export_model(config, weights, exported);
    std::cout << config.model.name << ": input [N, 3, " << traced.height << ", " << traced.width << "] -> features [N, "
              << traced.feature_dim << "]\n";
    return 0;
  });
}
