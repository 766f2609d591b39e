#include <gtest/gtest.h>

#include "reid/utils/strings.h"

namespace reid::utils {

TEST(Strings, EditDistanceCountsInsertionsDeletionsSubstitutions) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("solver.bsae_lr", "solver.base_lr"), 2u);
}

TEST(Strings, ClosestMatchSuggestsOnlyPlausibleTypos) {
  const std::vector<std::string> names = {"osnet_x1_0", "osnet_x0_25", "resnet50"};
  EXPECT_EQ(closest_match("osnet_x1_o", names), "osnet_x1_0");
  EXPECT_EQ(closest_match("resnet5", names), "resnet50");
  EXPECT_EQ(closest_match("vit_base", names), "");
  EXPECT_EQ(closest_match("x", {}), "");
}

TEST(Strings, SplitJoinTrim) {
  EXPECT_EQ(split("a.b.c", '.'), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(split("a..b.", '.'), (std::vector<std::string>{"a", "", "b", ""}));
  EXPECT_EQ(join({"a", "b"}, "+"), "a+b");
  EXPECT_EQ(trim("  x y \n"), "x y");
  EXPECT_EQ(trim(" \t"), "");
  EXPECT_TRUE(starts_with("cuda:1", "cuda:"));
  EXPECT_FALSE(ends_with("a.yaml", ".yml"));
}

TEST(Strings, FormatsBytesAndDurations) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(3ull << 30), "3.0 GiB");
  EXPECT_EQ(format_duration(4.25), "4.2s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(3723), "1h02m03s");
}

}  // namespace reid::utils
