#include <gtest/gtest.h>

#include <memory>

#include "reid/core/registry.h"

namespace reid {
namespace {

using IntRegistry = Registry<std::unique_ptr<int>(int)>;

IntRegistry make_registry() {
  IntRegistry registry("widget");
  registry.add("double_it", [](int x) { return std::make_unique<int>(2 * x); });
  registry.add("negate", [](int x) { return std::make_unique<int>(-x); });
  return registry;
}

TEST(Registry, CreatesByName) {
  const auto registry = make_registry();
  EXPECT_EQ(*registry.create("double_it", 21), 42);
  EXPECT_EQ(*registry.create("negate", 3), -3);
  EXPECT_TRUE(registry.contains("negate"));
  EXPECT_FALSE(registry.contains("triple"));
  EXPECT_EQ(registry.names(), (std::vector<std::string>{"double_it", "negate"}));
}

TEST(Registry, DuplicateNameThrows) {
  auto registry = make_registry();
  try {
    registry.add("negate", [](int x) { return std::make_unique<int>(x); });
    FAIL() << "expected a duplicate-name error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "widget 'negate' is already registered");
  }
  EXPECT_THROW(registry.add("", [](int x) { return std::make_unique<int>(x); }), Error);
}

TEST(Registry, UnknownNameListsValidNamesAndSuggests) {
  const auto registry = make_registry();
  try {
    registry.create("negat", 1);
    FAIL() << "expected an unknown-name error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "unknown widget 'negat' (did you mean 'negate'?); valid names: double_it, negate");
  }
  try {
    registry.create("zzzzzzzz", 1);
    FAIL() << "expected an unknown-name error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown widget 'zzzzzzzz'; valid names: double_it, negate");
  }
}

}  // namespace
}  // namespace reid
