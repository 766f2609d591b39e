#include "reid/utils/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

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

namespace {

// Writes all of `bytes` to `fd`; 0, or the system's reason (a short write counts as a full disk).
int write_all(int fd, std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : ENOSPC;
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

}  // namespace

void write_file(const std::string& path, std::string_view bytes, const std::string& what, const std::string& name) {
  const std::string& shown = name.empty() ? path : name;
  // POSIX calls rather than a stream: a full disk, a quota or a file-size limit must give the
  // system's reason, and the data must reach the disk before the rename makes it current.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IOError(shown, "cannot write " + what + ": " + std::strerror(errno));
  if (const int error = write_all(fd, bytes)) {
    ::close(fd);
    throw IOError(shown, "cannot write " + what + ": " + std::strerror(error));
  }
  if (::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
    const int error = errno;
    ::close(fd);
    throw IOError(shown, "cannot write " + what + ": " + std::strerror(error));
  }
  if (::close(fd) != 0) throw IOError(shown, "cannot write " + what + ": " + std::strerror(errno));
}

void append_file(const std::string& path, std::string_view bytes, const std::string& what) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw IOError(path, "cannot append to " + what + ": " + std::strerror(errno));
  const off_t start = ::lseek(fd, 0, SEEK_END);
  if (const int error = write_all(fd, bytes)) {
    // Cut back what was written: a reader never sees half a record.
    if (start >= 0 && ::ftruncate(fd, start) != 0) {
    }
    ::close(fd);
    throw IOError(path, "cannot append to " + what + ": " + std::strerror(error));
  }
  if (::close(fd) != 0) throw IOError(path, "cannot append to " + what + ": " + std::strerror(errno));
}

void write_file_atomically(const std::string& path, std::string_view bytes, const std::string& what) {
  write_atomically(path, what, [&](const std::string& temporary) { write_file(temporary, bytes, what, path); });
}

}  // namespace reid::utils
