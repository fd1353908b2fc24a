#ifndef BERTD_COMMON_FILE_UTIL_H_
#define BERTD_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bertd {

// "<what> <path>: <strerror(error)>" with the code a caller can act on: RESOURCE_EXHAUSTED when
// the disk (or a quota) is full, NOT_FOUND for a missing file, INTERNAL otherwise.
absl::Status ErrnoStatus(absl::string_view what, absl::string_view path, int error);

// Reads a whole file. NOT_FOUND when it does not exist, INTERNAL on I/O errors.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `contents` to `path` so that readers see either the old file or the whole new one:
// the data goes to a temporary file in the same directory, is fsync'ed, then renamed over `path`.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// fsyncs a directory so that a rename inside it survives a crash.
absl::Status SyncDirectory(const std::string& dir);

// A whole file mapped read-only: its bytes are the kernel's page cache, not a heap copy, so a
// 1 GiB dataset parsed from it is not held in memory twice. Movable, not copyable.
class MappedFile {
 public:
  // NOT_FOUND for a missing file, INTERNAL on other errors. An empty file maps to "".
  static absl::StatusOr<MappedFile> Open(const std::string& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  absl::string_view bytes() const { return absl::string_view(static_cast<const char*>(data_), size_); }

 private:
  MappedFile(void* data, size_t size) : data_(data), size_(size) {}
  void* data_ = nullptr;
  size_t size_ = 0;
};

// The bytes of the regular files under `dir`, recursively (symbolic links are not followed);
// 0 for a missing directory. What a disk quota of the directory counts.
absl::StatusOr<int64_t> DirectoryBytes(const std::string& dir);

}  // namespace bertd

#endif  // BERTD_COMMON_FILE_UTIL_H_
