// Not run by CI: the comparison that decided which torch.save reader LibReID keeps. The same
// inputs as fuzz_torch_file (first byte even: the whole archive; odd: a pickle program in a
// well-formed archive), given to LibTorch's own reader, torch::jit::pickle_load. A c10::Error is
// its clean answer to bad input; a crash, a sanitizer report, a timeout or running out of memory
// is a finding. Build with -DREID_BUILD_FUZZERS=ON (scripts/sanitize.sh's configuration) and run
// as fuzz_torch_file is run there (docs/testing.md has the figures).
#include <string>
#include <vector>

#include <torch/csrc/jit/serialization/pickle.h>

#include "zip_records.h"

using reid::test::zip;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string archive =
      data[0] % 2 == 0 ? rest
                       : zip({{"archive/data.pkl", rest}, {"archive/data/0", std::string(64, '\1')}, {"archive/data/1", std::string(64, '\2')},
                              {"archive/version", "3\n"}});
  try {
    torch::jit::pickle_load(std::vector<char>(archive.begin(), archive.end()));
  } catch (const c10::Error&) {
  }
  return 0;
}
