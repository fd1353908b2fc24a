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

}  // namespace bertd

#endif  // BERTD_COMMON_FILE_UTIL_H_
