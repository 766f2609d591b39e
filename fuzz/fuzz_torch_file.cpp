// The torch.save reader: zip structure and CRCs, then the pickle program. The first byte picks
// the mode: even, the input is the whole archive; odd, the rest is a pickle program wrapped in a
// well-formed archive (valid CRCs, a tensor record), so that the unpickler itself is explored.
#include <zlib.h>

#include <string>
#include <vector>

#include "fuzz_support.h"
#include "reid/models/weights.h"
#include "reid/utils/torch_file.h"

namespace {

std::string zip(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string out, directory;
  auto le = [](std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xFF);
  };
  for (const auto& r : records) {
    const auto crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(r.second.data()),
                                                 static_cast<uInt>(r.second.size())));
    const uint64_t offset = out.size();
    le(out, 0x04034b50, 4), le(out, 20, 2), le(out, 0, 2), le(out, 0, 2), le(out, 0, 4), le(out, crc, 4);
    le(out, r.second.size(), 4), le(out, r.second.size(), 4), le(out, r.first.size(), 2), le(out, 0, 2);
    out += r.first + r.second;
    le(directory, 0x02014b50, 4), le(directory, 20, 2), le(directory, 20, 2), le(directory, 0, 2);
    le(directory, 0, 2), le(directory, 0, 4), le(directory, crc, 4), le(directory, r.second.size(), 4);
    le(directory, r.second.size(), 4), le(directory, r.first.size(), 2), le(directory, 0, 2), le(directory, 0, 2);
    le(directory, 0, 2), le(directory, 0, 2), le(directory, 0, 4), le(directory, offset, 4);
    directory += r.first;
  }
  const uint64_t cd = out.size();
  out += directory;
  le(out, 0x06054b50, 4), le(out, 0, 2), le(out, 0, 2), le(out, records.size(), 2), le(out, records.size(), 2);
  le(out, directory.size(), 4), le(out, cd, 4), le(out, 0, 2);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string archive =
      data[0] % 2 == 0 ? rest
                       : zip({{"archive/data.pkl", rest}, {"archive/data/0", std::string(64, '\1')}, {"archive/data/1", std::string(64, '\2')},
                              {"archive/version", "3\n"}});
  reid::fuzz::expect_clean([&] { reid::utils::parse_torch_file(archive, "fuzz.pt"); });
  const std::string path = reid::fuzz::write("input.pt", archive);
  reid::fuzz::expect_clean([&] { reid::models::read_state_dict(path); });
  return 0;
}
