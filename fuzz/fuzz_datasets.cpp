// Dataset name and list parsers: Market-style file names, image lists (reid-extract --list),
// custom-dataset lists and MSMT17 lists, all from the same input.
#include <filesystem>
#include <string>

#include "fuzz_support.h"
#include "reid/data/datasets.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  for (std::size_t start = 0; start < input.size();) {
    auto end = input.find('\n', start);
    if (end == std::string::npos) end = input.size();
    int64_t pid = 0, camera = 0;
    reid::data::parse_market_name(input.substr(start, end - start), pid, camera);
    start = end + 1;
  }
  const auto& dir = reid::fuzz::scratch();
  const std::string list = reid::fuzz::write("list.txt", input);
  reid::fuzz::expect_clean([&] { reid::data::image_list_records(list, dir.string()); });
  reid::data::DatasetOptions options;
  options.root = dir.string();
  options.custom.train_list = list;
  reid::fuzz::expect_clean([&] { reid::data::custom_dataset(options); });
  // MSMT17 V1 layout with the input as every list.
  const fs::path msmt = dir / "msmt17/MSMT17_V1";
  fs::create_directories(msmt / "train");
  fs::create_directories(msmt / "test");
  for (const char* name : {"list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt"})
    reid::fuzz::write(std::string("msmt17/MSMT17_V1/") + name, input);
  reid::fuzz::expect_clean([&] { reid::data::msmt17(options); });
  return 0;
}
