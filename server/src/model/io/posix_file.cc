#include "model/io/posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace bertd::model::internal {
namespace {

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return ErrnoStatus(what, path, errno);
}

// Linux transfers at most ~2 GiB per read/write call.
constexpr size_t kMaxChunk = size_t{1} << 30;

}  // namespace

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) ::close(fd_);
}

ScopedFd& ScopedFd::operator=(ScopedFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

absl::StatusOr<OpenedFile> OpenForRead(const std::string& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("file not found: ", path));
    return ErrnoError("cannot open", path);
  }
  OpenedFile file{ScopedFd(fd), 0};
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError("cannot stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  file.size = static_cast<uint64_t>(st.st_size);
  return file;
}

absl::StatusOr<size_t> PreadFully(int fd, void* buf, size_t n, uint64_t offset,
                                  const std::string& path) {
  char* out = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, out + done, std::min(n - done, kMaxChunk),
                        static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("cannot read", path);
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return done;
}

AtomicFileWriter::~AtomicFileWriter() { Abandon(); }

void AtomicFileWriter::Abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_path_.c_str());
    fd_ = -1;
  }
}

absl::Status AtomicFileWriter::Open(const std::string& path) {
  Abandon();
  path_ = path;
  std::filesystem::path target(path);
  std::filesystem::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  tmp_path_ = (dir / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  fd_ = ::mkstemp(tmp_path_.data());
  if (fd_ < 0) return ErrnoError("cannot create temporary file for", path);
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Write(const void* data, size_t n) {
  if (fd_ < 0) return absl::FailedPreconditionError("AtomicFileWriter is not open");
  const char* in = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, in, std::min(n, kMaxChunk));
    if (w < 0) {
      if (errno == EINTR) continue;
      absl::Status error = ErrnoError("cannot write", tmp_path_);
      Abandon();
      return error;
    }
    in += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError("AtomicFileWriter is not open");
  // mkstemp creates 0600; checkpoints are meant to be shared like any other written file.
  if (::fsync(fd_) != 0 || ::fchmod(fd_, 0644) != 0) {
    absl::Status error = ErrnoError("cannot fsync", tmp_path_);
    Abandon();
    return error;
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    absl::Status error = ErrnoError("cannot close", tmp_path_);
    ::unlink(tmp_path_.c_str());
    return error;
  }
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    absl::Status error = ErrnoError("cannot rename temporary file onto", path_);
    ::unlink(tmp_path_.c_str());
    return error;
  }
  std::filesystem::path dir = std::filesystem::path(path_).parent_path();
  return SyncDirectory(dir.empty() ? "." : dir.string());
}

}  // namespace bertd::model::internal
