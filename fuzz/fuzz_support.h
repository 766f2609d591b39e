#pragma once
// Shared by the libFuzzer harnesses: a scratch folder per process and the rule that only
// reid::Error may escape the code under test (any other exception is a finding: an unclear
// message, or worse).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "reid/core/error.h"

namespace reid::fuzz {

inline const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("reid_fuzz_" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::string write(const std::string& name, const std::string& bytes) {
  const auto path = scratch() / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path.string();
}

// Runs `body`; reid::Error is the expected answer to bad input, anything else aborts.
template <class F>
void expect_clean(F&& body) {
  try {
    body();
  } catch (const reid::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FINDING: an exception other than reid::Error escaped: %s\n", e.what());
    std::abort();
  }
}

}  // namespace reid::fuzz
