#include <gtest/gtest.h>

#include "reid/core/error.h"
#include "reid/engine/tensorboard.h"
#include "support.h"

namespace reid::engine {
namespace {

TEST(TensorBoard, Crc32cKnownAnswers) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(TensorBoard, ScalarsRoundTripWithValidRecords) {
  if (!tensorboard_available()) GTEST_SKIP() << "built without Protobuf";
  test::TempDir dir;
  std::string path;
  {
    EventWriter writer((dir / "tb").string());
    writer.add_scalar("train/loss", 2.5, 10);
    writer.add_scalar("eval/market1501/rank1", 0.75, 3);
    writer.flush();
    path = writer.path();
  }
  EXPECT_NE(path.find("events.out.tfevents."), std::string::npos);
  const auto events = read_scalar_events(path);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].tag, "train/loss");
  EXPECT_EQ(events[0].step, 10);
  EXPECT_FLOAT_EQ(events[0].value, 2.5f);
  EXPECT_EQ(events[1].tag, "eval/market1501/rank1");
  // A flipped byte breaks a record's CRC.
  std::string bytes = test::read_file(path);
  bytes[bytes.size() - 10] ^= 0x40;
  test::write_file(dir / "bad", bytes);
  EXPECT_THROW(read_scalar_events((dir / "bad").string()), IOError);
}

}  // namespace
}  // namespace reid::engine
