// docs/configuration.md must document every key with its real type and default, and nothing
// that no longer exists.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "reid/config/loader.h"
#include "reid/utils/strings.h"
#include "support.h"

namespace reid::config {
namespace {

struct DocRow {
  std::string type;
  std::string default_value;
  std::string meaning;
};

std::string strip_code(const std::string& cell) {
  std::string text = utils::trim(cell);
  if (text.size() >= 2 && text.front() == '`' && text.back() == '`')
    text = text.substr(1, text.size() - 2);
  return text;
}

std::map<std::string, DocRow> documented_keys() {
  std::map<std::string, DocRow> rows;
  std::istringstream doc(test::read_file(test::source_dir() / "docs/configuration.md"));
  std::string line;
  while (std::getline(doc, line)) {
    if (!utils::starts_with(line, "| `")) continue;
    const auto cells = utils::split(line, '|');  // "", key, type, default, meaning, ""
    if (cells.size() < 6) continue;
    rows[strip_code(cells[1])] = {utils::trim(cells[2]), strip_code(cells[3]),
                                  utils::trim(cells[4])};
  }
  return rows;
}

TEST(ConfigDocs, EveryKeyIsDocumentedWithItsTypeAndDefault) {
  const auto rows = documented_keys();
  ASSERT_FALSE(rows.empty()) << "docs/configuration.md has no key table";
  for (const auto& key : list_keys()) {
    const auto it = rows.find(key.path);
    if (it == rows.end()) {
      ADD_FAILURE() << "docs/configuration.md does not document `" << key.path << "` ("
                    << key.type << ", default " << key.default_value << ")";
      continue;
    }
    EXPECT_EQ(it->second.type, key.type) << key.path;
    EXPECT_EQ(it->second.default_value, key.default_value) << key.path;
    EXPECT_FALSE(it->second.meaning.empty()) << key.path << " has no meaning";
  }
}

TEST(ConfigDocs, NoStaleKeys) {
  std::map<std::string, bool> known;
  for (const auto& key : list_keys()) known[key.path] = true;
  for (const auto& row : documented_keys())
    EXPECT_TRUE(known.count(row.first)) << "docs/configuration.md documents `" << row.first
                                        << "`, which is not a config key";
}

}  // namespace
}  // namespace reid::config
