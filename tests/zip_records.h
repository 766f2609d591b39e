#pragma once
// A zip archive with stored records and correct CRC-32s, as torch.save writes them: shared by the
// reliability tests and the torch.save fuzz harness to craft archives around chosen bytes.
#include <zlib.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace reid::test {

inline std::string zip(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string out, directory;
  auto le = [](std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s += static_cast<char>((v >> (8 * i)) & 0xFF);
  };
  for (const auto& r : records) {
    const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(r.second.data()),
                                                     static_cast<uInt>(r.second.size())));
    const uint64_t offset = out.size();
    le(out, 0x04034b50, 4), le(out, 20, 2), le(out, 0, 2), le(out, 0, 2), le(out, 0, 4), le(out, crc, 4);
    le(out, r.second.size(), 4), le(out, r.second.size(), 4), le(out, r.first.size(), 2), le(out, 0, 2);
    out += r.first + r.second;
    le(directory, 0x02014b50, 4), le(directory, 20, 2), le(directory, 20, 2), le(directory, 0, 2), le(directory, 0, 2);
    le(directory, 0, 4), le(directory, crc, 4), le(directory, r.second.size(), 4), le(directory, r.second.size(), 4);
    le(directory, r.first.size(), 2), le(directory, 0, 2), le(directory, 0, 2), le(directory, 0, 2), le(directory, 0, 2);
    le(directory, 0, 4), le(directory, offset, 4);
    directory += r.first;
  }
  const uint64_t cd = out.size();
  out += directory;
  le(out, 0x06054b50, 4), le(out, 0, 2), le(out, 0, 2), le(out, records.size(), 2), le(out, records.size(), 2);
  le(out, directory.size(), 4), le(out, cd, 4), le(out, 0, 2);
  return out;
}

}  // namespace reid::test
