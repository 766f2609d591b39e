// The torch.save reader: zip structure and CRCs, then the pickle program. The first byte picks
// the mode: even, the input is the whole archive; odd, the rest is a pickle program wrapped in a
// well-formed archive (valid CRCs, a tensor record), so that the unpickler itself is explored.
#include <zlib.h>

#include <string>
#include <vector>

#include "fuzz_support.h"
#include "reid/io/torch_file.h"
#include "reid/models/weights.h"
#include "zip_records.h"

using reid::test::zip;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string archive =
      data[0] % 2 == 0 ? rest
                       : zip({{"archive/data.pkl", rest}, {"archive/data/0", std::string(64, '\1')}, {"archive/data/1", std::string(64, '\2')},
                              {"archive/version", "3\n"}});
  reid::fuzz::expect_clean([&] { reid::io::parse_torch_file(archive, "fuzz.pt"); });
  const std::string path = reid::fuzz::write("input.pt", archive);
  reid::fuzz::expect_clean([&] { reid::models::read_state_dict(path); });
  return 0;
}
