#pragma once
/// @file
/// TensorBoard event files (scalars): the Event messages are encoded by hand (protobuf's wire
/// format for the few fields scalars need, so no Protobuf dependency) in TensorBoard's record format:
/// each record is a little-endian uint64 length, its masked CRC-32C, the serialised Event and
/// the data's masked CRC-32C.

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace reid::io {

/// Always true (kept for code written when the writer needed Protobuf).
bool tensorboard_available();

/// CRC-32C (Castagnoli) of `size` bytes.
uint32_t crc32c(const void* data, std::size_t size);

/// Appends scalar summaries to a new events.out.tfevents.<time>.<host> file in a folder.
class EventWriter {
 public:
  /// Creates `dir` if needed and the event file in it (starting with the file-version record).
  /// Throws reid::IOError.
  explicit EventWriter(const std::string& dir);
  void add_scalar(const std::string& tag, double value, int64_t step);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::ofstream out_;
};

/// One scalar read back from an event file.
struct ScalarEvent {
  std::string tag;
  int64_t step = 0;
  float value = 0.0f;
};

/// Reads every scalar of an event file, checking the record CRCs. Throws reid::IOError.
std::vector<ScalarEvent> read_scalar_events(const std::string& path);

}  // namespace reid::io
