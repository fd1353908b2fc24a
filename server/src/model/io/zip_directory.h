#ifndef BERTD_MODEL_IO_ZIP_DIRECTORY_H_
#define BERTD_MODEL_IO_ZIP_DIRECTORY_H_

// Internal to model/io: the central directory of a zip archive, read without LibTorch so that a
// torch.save file's claimed record sizes can be checked before LibTorch's reader allocates them.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace bertd::model::internal {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0: stored, 8: deflate
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
};

// Entries in directory order. Finds the end-of-central-directory record as miniz does (the last
// one in the file) and follows the zip64 records when present. INVALID_ARGUMENT when the
// directory is missing, truncated or points outside the file (the message leaves the path to
// the caller).
absl::StatusOr<std::vector<ZipEntry>> ReadZipDirectory(int fd, uint64_t file_size,
                                                       const std::string& path);

}  // namespace bertd::model::internal

#endif  // BERTD_MODEL_IO_ZIP_DIRECTORY_H_
