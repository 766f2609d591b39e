#include "reid/io/tensorboard.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <sstream>

#include "reid/core/error.h"
#include "reid/io/protobuf.h"


namespace reid::io {
namespace {

uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The protobuf wire format of TensorBoard's Event message (io::ProtoWriter): the subset scalar
// logging needs (tensorflow/core/util/event.proto, framework/summary.proto field numbers):
// Event{1: double wall_time, 2: int64 step, 3: string file_version, 5: Summary summary},
// Summary{1: repeated Value value}, Value{1: string tag, 2: float simple_value}.
io::ProtoWriter event(double time, int64_t step) {
  io::ProtoWriter e;
  e.fixed64(1, time).varint(2, static_cast<uint64_t>(step));
  return e;
}

// A bounds-checked reader of one message's fields.
class Fields {
 public:
  Fields(const std::string& data, const std::string& path) : d_(data), path_(path) {}
  bool next(int& field, int& wire) {
    if (pos_ >= d_.size()) return false;
    const uint64_t key = read_varint();
    field = static_cast<int>(key >> 3);
    wire = static_cast<int>(key & 7);
    return true;
  }
  uint64_t read_varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= d_.size()) fail();
      const auto b = static_cast<unsigned char>(d_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail();
  }
  std::string bytes(std::size_t n) {
    if (n > d_.size() - pos_) fail();
    std::string s = d_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string read(int wire) {
    switch (wire) {
      case 0: return std::to_string(read_varint());
      case 1: return bytes(8);
      case 2: return bytes(static_cast<std::size_t>(read_varint()));
      case 5: return bytes(4);
      default: fail();
    }
  }
  [[noreturn]] void fail() const { throw IOError(path_, "undecodable event"); }

 private:
  const std::string& d_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

}  // namespace

bool tensorboard_available() { return true; }

uint32_t crc32c(const void* data, std::size_t size) {
  static const auto table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

EventWriter::EventWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  path_ = (std::filesystem::path(dir) /
           ("events.out.tfevents." + std::to_string(static_cast<long long>(wall_time())) + "." + host + ".libreid"))
              .string();
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw IOError(path_, "cannot create the TensorBoard event file");
  write_record(event(wall_time(), 0).bytes(3, "brain.Event:2").str());
  flush();
}

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  io::ProtoWriter v;
  v.bytes(1, tag).fixed32(2, static_cast<float>(value));
  io::ProtoWriter summary;
  summary.message(1, v);
  write_record(event(wall_time(), step).message(5, summary).str());
}

void EventWriter::write_record(const std::string& data) {
  const uint64_t length = data.size();
  char header[12];
  for (int i = 0; i < 8; ++i) header[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  const uint32_t length_crc = masked(crc32c(header, 8));
  for (int i = 0; i < 4; ++i) header[8 + i] = static_cast<char>((length_crc >> (8 * i)) & 0xFF);
  const uint32_t data_crc = masked(crc32c(data.data(), data.size()));
  char footer[4];
  for (int i = 0; i < 4; ++i) footer[i] = static_cast<char>((data_crc >> (8 * i)) & 0xFF);
  out_.write(header, 12);
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  out_.write(footer, 4);
  if (!out_) throw IOError(path_, "cannot write the TensorBoard event file");
}

void EventWriter::flush() { out_.flush(); }

std::vector<ScalarEvent> read_scalar_events(const std::string& path) {
  std::vector<ScalarEvent> out;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(path, "cannot open the event file");
  auto u32 = [](const unsigned char* b) { return b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24); };
  while (true) {
    unsigned char header[12];
    if (!in.read(reinterpret_cast<char*>(header), 12)) break;
    uint64_t length = 0;
    for (int i = 0; i < 8; ++i) length |= static_cast<uint64_t>(header[i]) << (8 * i);
    if (masked(crc32c(header, 8)) != u32(header + 8)) throw IOError(path, "corrupt record length");
    if (length > (uint64_t{1} << 26)) throw IOError(path, "corrupt record length");
    std::string data(length, '\0');
    unsigned char footer[4];
    if (!in.read(&data[0], static_cast<std::streamsize>(length)) || !in.read(reinterpret_cast<char*>(footer), 4))
      throw IOError(path, "truncated record");
    if (masked(crc32c(data.data(), data.size())) != u32(footer)) throw IOError(path, "corrupt record data");
    int64_t step = 0;
    std::vector<std::pair<std::string, float>> values;
    Fields e(data, path);
    int field = 0, wire = 0;
    while (e.next(field, wire)) {
      const std::string payload = e.read(wire);
      if (field == 2 && wire == 0) step = static_cast<int64_t>(std::stoull(payload));
      if (field != 5 || wire != 2) continue;
      Fields summary(payload, path);
      while (summary.next(field, wire)) {
        const std::string value = summary.read(wire);
        if (field != 1 || wire != 2) continue;
        Fields v(value, path);
        std::string tag;
        float simple = 0;
        while (v.next(field, wire)) {
          const std::string x = v.read(wire);
          if (field == 1 && wire == 2) tag = x;
          if (field == 2 && wire == 5) std::memcpy(&simple, x.data(), 4);
        }
        values.emplace_back(tag, simple);
      }
    }
    for (const auto& v : values) out.push_back({v.first, step, v.second});
  }
  return out;
}

}  // namespace reid::io
