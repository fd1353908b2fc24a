#ifndef BERTD_MODEL_IO_POSIX_FILE_H_
#define BERTD_MODEL_IO_POSIX_FILE_H_

// Internal to model/io: unbuffered positional reads and a streaming atomic writer, so that
// checkpoints of hundreds of MB never need a second full copy in memory.

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace bertd::model::internal {

// Owns a file descriptor.
class ScopedFd {
 public:
  explicit ScopedFd(int fd = -1) : fd_(fd) {}
  ~ScopedFd();
  ScopedFd(ScopedFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ScopedFd& operator=(ScopedFd&& other) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;

  int get() const { return fd_; }

 private:
  int fd_;
};

struct OpenedFile {
  ScopedFd fd;
  uint64_t size = 0;
};

// Opens a regular file for reading. NOT_FOUND if missing; INVALID_ARGUMENT if it is not a
// regular file (a FIFO or device could block or never end).
absl::StatusOr<OpenedFile> OpenForRead(const std::string& path);

// Reads up to `n` bytes at `offset`, retrying short reads. Returns the count read (less than `n`
// only at end of file); INTERNAL on I/O errors.
absl::StatusOr<size_t> PreadFully(int fd, void* buf, size_t n, uint64_t offset,
                                  const std::string& path);

// Streams a file to a temporary sibling and renames it over the target on Commit(), so readers
// see either the old file or the whole new one. Without Commit() the temporary file is removed.
class AtomicFileWriter {
 public:
  AtomicFileWriter() = default;
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  absl::Status Open(const std::string& path);
  absl::Status Write(const void* data, size_t n);
  // fsyncs, renames onto the target and fsyncs the directory.
  absl::Status Commit();

 private:
  void Abandon();

  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
};

}  // namespace bertd::model::internal

#endif  // BERTD_MODEL_IO_POSIX_FILE_H_
