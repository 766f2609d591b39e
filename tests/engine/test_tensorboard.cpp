#include <gtest/gtest.h>

#include "reid/core/error.h"
#include "reid/io/tensorboard.h"
#include "support.h"

namespace reid::engine {
namespace {

TEST(TensorBoard, Crc32cKnownAnswers) {
  EXPECT_EQ(io::crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(io::crc32c("", 0), 0u);
}

TEST(TensorBoard, ScalarsRoundTripWithValidRecords) {
  test::TempDir dir;
  std::string path;
  {
    io::EventWriter writer((dir / "tb").string());
    writer.add_scalar("train/loss", 2.5, 10);
    writer.add_scalar("eval/market1501/rank1", 0.75, 3);
    writer.flush();
    path = writer.path();
  }
  EXPECT_NE(path.find("events.out.tfevents."), std::string::npos);
  const auto events = io::read_scalar_events(path);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].tag, "train/loss");
  EXPECT_EQ(events[0].step, 10);
  EXPECT_FLOAT_EQ(events[0].value, 2.5f);
  EXPECT_EQ(events[1].tag, "eval/market1501/rank1");
  // The last record's payload, byte for byte as protobuf encodes Event{wall_time (9 bytes,
  // skipped), step 3, summary{value{tag, simple_value 0.75}}}: TensorBoard's readers parse it.
  const std::string file = test::read_file(path);
  const std::string tag = "eval/market1501/rank1";
  const std::string value = std::string("\x0a") + static_cast<char>(tag.size()) + tag + std::string("\x15\x00\x00\x40\x3f", 5);
  const std::string summary = std::string("\x0a") + static_cast<char>(value.size()) + value;
  const std::string tail = std::string("\x10\x03\x2a", 3) + static_cast<char>(summary.size()) + summary;
  EXPECT_EQ(file.substr(file.size() - 4 - tail.size(), tail.size()), tail);
  // A flipped byte breaks a record's CRC.
  std::string bytes = test::read_file(path);
  bytes[bytes.size() - 10] ^= 0x40;
  test::write_file(dir / "bad", bytes);
  EXPECT_THROW(io::read_scalar_events((dir / "bad").string()), IOError);
}

}  // namespace
}  // namespace reid::engine
