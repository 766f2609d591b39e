#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "reid/core/error.h"
#include "reid/utils/files.h"
#include "support.h"

namespace reid::utils {
namespace {

std::string read_all(const test::fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t entries(const test::fs::path& dir) {
  return static_cast<std::size_t>(std::distance(test::fs::directory_iterator(dir), test::fs::directory_iterator()));
}

}  // namespace

TEST(Files, WriteAtomicallyCreatesFoldersAndReplacesTheFile) {
  test::TempDir dir;
  const auto path = dir / "a/b/out.bin";
  write_file_atomically(path.string(), "first", "the test file");
  EXPECT_EQ(read_all(path), "first");
  write_file_atomically(path.string(), std::string("sec\0nd", 6), "the test file");
  EXPECT_EQ(read_all(path), std::string("sec\0nd", 6));
  EXPECT_EQ(entries(path.parent_path()), 1u);  // no temporary left behind
}

TEST(Files, AFailedWriteKeepsThePreviousContentAndLeavesNoTemporary) {
  test::TempDir dir;
  const auto path = dir / "weights.pt";
  write_file_atomically(path.string(), "good", "the weights");
  std::string seen;
  EXPECT_THROW(write_atomically(path.string(), "the weights",
                                [&](const std::string& temporary) {
                                  seen = temporary;
                                  std::ofstream(temporary) << "half";
                                  throw IOError(temporary, "disk full");
                                }),
               IOError);
  EXPECT_EQ(read_all(path), "good");
  EXPECT_EQ(entries(dir.path()), 1u);
  // The temporary keeps the extension so that format-by-extension writers (OpenCV) still work.
  EXPECT_EQ(test::fs::path(seen).extension(), ".pt");
  EXPECT_EQ(test::fs::path(seen).parent_path(), path.parent_path());
}

TEST(Files, AnUnwritableFolderNamesThePath) {
  test::TempDir dir;
  test::write_file(dir / "file", "x");
  try {
    write_file_atomically((dir / "file/inside.txt").string(), "x", "the test file");
    FAIL() << "expected an IOError";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("the test file"), std::string::npos) << e.what();
  }
}

}  // namespace reid::utils
