#include "reid/utils/files.h"

#include <filesystem>
#include <fstream>

#include "reid/core/error.h"

namespace reid::utils {

namespace fs = std::filesystem;

void write_atomically(const std::string& path, const std::string& what,
                      const std::function<void(const std::string& temporary)>& write) {
  const fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) throw IOError(target.parent_path().string(), "cannot create the folder for " + what + ": " + ec.message());
  }
  // Keep the extension last so that writers choosing the format by extension (OpenCV) still work.
  const std::string temporary =
      (target.parent_path() / (target.stem().string() + ".tmp" + target.extension().string())).string();
  try {
    write(temporary);
  } catch (...) {
    fs::remove(temporary, ec);
    throw;
  }
  fs::rename(temporary, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw IOError(path, "cannot move " + what + " into place: " + ec.message());
  }
}

void write_file_atomically(const std::string& path, std::string_view bytes, const std::string& what) {
  write_atomically(path, what, [&](const std::string& temporary) {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw IOError(temporary, "cannot write " + what);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) throw IOError(temporary, "cannot write " + what + " (disk full?)");
  });
}

}  // namespace reid::utils
