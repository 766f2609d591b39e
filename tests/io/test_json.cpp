// JSON text: every string LibReID writes into metrics.jsonl (loss-term and dataset names come
// from the user's YAML) must stay valid JSON, and so must every number.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "reid/io/json.h"

namespace reid::io {
namespace {

TEST(Json, StringsEscapeQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(json_string("triplet"), "\"triplet\"");
  EXPECT_EQ(json_string("a \"quoted\" name"), "\"a \\\"quoted\\\" name\"");
  EXPECT_EQ(json_string("C:\\data"), "\"C:\\\\data\"");
  EXPECT_EQ(json_string("line\nbreak\ttab\rreturn"), "\"line\\nbreak\\ttab\\rreturn\"");
  EXPECT_EQ(json_string(std::string("nul\0bell\a", 9)), "\"nul\\u0000bell\\u0007\"");
  EXPECT_EQ(json_string("\x1f"), "\"\\u001f\"");
  // UTF-8 passes through unchanged (JSON text is UTF-8).
  EXPECT_EQ(json_string("Préfet 東京"), "\"Préfet 東京\"");
  EXPECT_EQ(json_string(""), "\"\"");
}

TEST(Json, NumbersThatJsonCannotHoldAreNull) {
  EXPECT_EQ(json_number(0.25), "0.25");
  EXPECT_EQ(json_number(-3.0), "-3");
  EXPECT_EQ(json_number(1234567.0), "1.23457e+06");
  EXPECT_EQ(json_number(std::numeric_limits<double>::quiet_NaN()), "null");
  EXPECT_EQ(json_number(std::numeric_limits<double>::infinity()), "null");
  EXPECT_EQ(json_number(-std::numeric_limits<double>::infinity()), "null");
}

}  // namespace
}  // namespace reid::io
