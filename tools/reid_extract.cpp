// reid-extract: features of an image folder or list with a model and its weights, written as
// .npy files (<name>_features, _pids, _camids, _paths) that reid-eval and Python read.
#include <filesystem>
#include <iostream>

#include "cli.h"
#include "reid/app/test.h"
#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/data/datasets.h"

int main(int argc, char** argv) {
  return reid::tools::run_main([&]() -> int {
    CLI::App app{"reid-extract: extract re-identification features of images"};
    reid::tools::CommonOptions options;
    std::string weights, images, list, root, name = "features";
    reid::tools::add_common_options(app, options);
    app.add_option("--weights", weights, "Model weights (a state dict from reid-train or Python)")->required();
    app.add_option("--images", images, "Folder of images (recursive); Market-style names give pid and camid");
    app.add_option("--list", list, "File listing images, one 'path' or 'path pid camid' per line");
    app.add_option("--root", root, "Folder relative paths in --list start from (default: the list's folder)");
    app.add_option("--name", name, "Prefix of the output files (default: features)");
    if (const int code = reid::tools::parse_command_line(app, argc, argv); code >= 0) return code;
    if (images.empty() == list.empty()) throw reid::tools::UsageError("give exactly one of --images and --list");
    const reid::Config config = reid::tools::load_config(options);
    if (reid::tools::prepare_run(config, options, "reid-extract", "config_extract.yaml")) return 0;
    const auto records = reid::data::make_record_list(
        images.empty() ? reid::data::image_list_records(
                             list, root.empty() ? std::filesystem::path(list).parent_path().string() : root)
                       : reid::data::image_folder_records(images));
    const auto set = reid::app::extract(config, weights, records, config.output_dir, name);
    reid::logger().info("{} features of width {} written to {}/{}_*.npy", set.size(), set.features.size(1),
                        config.output_dir, name);
    return 0;
  });
}
