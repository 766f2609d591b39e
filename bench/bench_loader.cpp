// Loader throughput: decode + full training augmentation of real Market-1501 images at 256x128
// (resize, flip, pad 10 + random crop, normalise, random erasing), batches of 64, as images/s.
// Compare with bench/torchvision_loader.py (the same pipeline in torchvision + PIL) through
// bench/run_loader_bench.sh, which runs both side by side.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <CLI/CLI.hpp>

#include "reid/core/runtime.h"
#include "reid/data/datasets.h"
#include "reid/data/loader.h"
#include "reid/data/sampler.h"

int main(int argc, char** argv) {
  CLI::App app{"LibReID loader throughput on Market-1501 training images"};
  std::string root = std::getenv("REID_DATA_ROOT") ? std::getenv("REID_DATA_ROOT") : "data";
  int workers = 2, batch = 64, passes = 3, height = 256, width = 128;
  app.add_option("--root", root, "Dataset root holding market1501/");
  app.add_option("--workers", workers, "Loader threads");
  app.add_option("--batch-size", batch, "Images per batch");
  app.add_option("--passes", passes, "Passes over the training set (the first warms the page cache)");
  app.add_option("--height", height);
  app.add_option("--width", width);
  CLI11_PARSE(app, argc, argv);

  reid::data::DatasetOptions options;
  options.root = root;
  const auto splits = reid::data::load_dataset("market1501", options);
  const auto records = reid::data::make_record_list(splits.train);
  reid::data::TransformOptions transform;
  transform.height = height;
  transform.width = width;
  transform.augments = {reid::data::Augment::kRandomFlip, reid::data::Augment::kPadCrop,
                        reid::data::Augment::kRandomErasing};
  reid::data::LoaderOptions loader_options;
  loader_options.workers = workers;
  loader_options.prefetch = 2 * std::max(1, workers);
  reid::data::DataLoader loader(records, reid::data::Transform(transform), loader_options);
  reid::data::RandomSampler sampler(static_cast<int64_t>(records->size()), batch, false, 0);

  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    loader.start(sampler.plan(pass), static_cast<uint64_t>(pass));
    int64_t images = 0;
    double checksum = 0;
    while (auto b = loader.next()) {
      images += b->images.size(0);
      checksum += b->images[0][0][0][0].item<float>();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = images / seconds;
    best = std::max(best, rate);
    std::printf("pass %d: %lld images in %.2f s = %.0f images/s (checksum %.3f)\n", pass,
                static_cast<long long>(images), seconds, rate, checksum);
  }
  std::printf("libreid: workers=%d batch=%d size=%dx%d best=%.0f images/s (%.0f per worker)\n", workers, batch,
              height, width, best, best / std::max(1, workers));
  return 0;
}
