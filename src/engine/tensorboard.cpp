#include "reid/engine/tensorboard.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "reid/core/error.h"

#if REID_HAVE_TENSORBOARD
#include "tensorboard.pb.h"
#endif

namespace reid::engine {
namespace {

uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

bool tensorboard_available() { return REID_HAVE_TENSORBOARD != 0; }

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
#if REID_HAVE_TENSORBOARD
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  path_ = (std::filesystem::path(dir) /
           ("events.out.tfevents." + std::to_string(static_cast<long long>(wall_time())) + "." + host + ".libreid"))
              .string();
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw IOError(path_, "cannot create the TensorBoard event file");
  tensorboard::Event event;
  event.set_wall_time(wall_time());
  event.set_file_version("brain.Event:2");
  write_record(event.SerializeAsString());
  flush();
#else
  throw Error("TensorBoard event files need LibReID built with Protobuf (libprotobuf-dev, protobuf-compiler)");
#endif
}

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step) {
#if REID_HAVE_TENSORBOARD
  tensorboard::Event event;
  event.set_wall_time(wall_time());
  event.set_step(step);
  auto* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  write_record(event.SerializeAsString());
#else
  (void)tag, (void)value, (void)step;
#endif
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
#if REID_HAVE_TENSORBOARD
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(path, "cannot open the event file");
  auto u32 = [](const unsigned char* b) { return b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24); };
  while (true) {
    unsigned char header[12];
    if (!in.read(reinterpret_cast<char*>(header), 12)) break;
    uint64_t length = 0;
    for (int i = 0; i < 8; ++i) length |= static_cast<uint64_t>(header[i]) << (8 * i);
    if (masked(crc32c(header, 8)) != u32(header + 8)) throw IOError(path, "corrupt record length");
    std::string data(length, '\0');
    unsigned char footer[4];
    if (!in.read(&data[0], static_cast<std::streamsize>(length)) || !in.read(reinterpret_cast<char*>(footer), 4))
      throw IOError(path, "truncated record");
    if (masked(crc32c(data.data(), data.size())) != u32(footer)) throw IOError(path, "corrupt record data");
    tensorboard::Event event;
    if (!event.ParseFromString(data)) throw IOError(path, "undecodable event");
    if (!event.has_summary()) continue;
    for (const auto& v : event.summary().value()) out.push_back({v.tag(), event.step(), v.simple_value()});
  }
#else
  throw IOError(path, "reading TensorBoard files needs LibReID built with Protobuf");
#endif
  return out;
}

}  // namespace reid::engine
