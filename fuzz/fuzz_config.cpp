// Config loading: the input is a YAML config, a YAML file it names as _base_, and --set
// overrides, separated by lines holding only "---8<---".
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "reid/config/loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    const auto cut = input.find("\n---8<---\n", start);
    parts.push_back(input.substr(start, cut == std::string::npos ? std::string::npos : cut - start));
    if (cut == std::string::npos) break;
    start = cut + 10;
  }
  const std::string base = reid::fuzz::write("base.yaml", parts.size() > 1 ? parts[1] : "");
  std::vector<std::string> overrides;
  for (std::size_t i = 2; i < parts.size() && overrides.size() < 8; ++i) overrides.push_back(parts[i]);
  reid::fuzz::expect_clean([&] {
    const auto config = reid::config::parse_config(parts[0], overrides, reid::fuzz::scratch().string());
    (void)reid::config::to_yaml(config);
  });
  (void)base;
  return 0;
}
