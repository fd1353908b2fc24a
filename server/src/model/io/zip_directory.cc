#include "model/io/zip_directory.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/io/little_endian.h"
#include "model/io/posix_file.h"

namespace bertd::model::internal {
namespace {

constexpr uint32_t kEndOfDirectorySig = 0x06054b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr uint32_t kZip64EndOfDirectorySig = 0x06064b50;
constexpr uint32_t kDirectoryEntrySig = 0x02014b50;
constexpr size_t kEndOfDirectorySize = 22;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kZip64EndOfDirectorySize = 56;
constexpr size_t kDirectoryEntrySize = 46;
constexpr size_t kMaxCommentSize = 0xffff;
constexpr uint16_t kZip64ExtraId = 0x0001;
// A state dict has one record per tensor; this bounds memory on hostile directories.
constexpr uint64_t kMaxDirectoryBytes = uint64_t{64} << 20;

uint64_t Le(const char* p, size_t n) { return LoadLittleEndian(p, n); }

// The caller names the file; I/O errors (from PreadFully) name it themselves.
absl::Status Invalid(const std::string& problem) {
  return absl::InvalidArgumentError(absl::StrCat("bad zip archive: ", problem));
}

absl::StatusOr<std::string> ReadAt(int fd, uint64_t offset, size_t n, const std::string& path) {
  std::string bytes(n, '\0');
  BERTD_ASSIGN_OR_RETURN(size_t got, PreadFully(fd, bytes.data(), n, offset, path));
  if (got != n) return Invalid("truncated");
  return bytes;
}

// Sizes and offset that do not fit 32 bits are 0xffffffff in the entry and follow, in this
// order, in the zip64 extra field.
absl::Status ApplyZip64Extra(const char* extra, size_t extra_size, ZipEntry& entry) {
  const bool need_uncompressed = entry.uncompressed_size == 0xffffffff;
  const bool need_compressed = entry.compressed_size == 0xffffffff;
  const bool need_offset = entry.local_header_offset == 0xffffffff;
  if (!need_uncompressed && !need_compressed && !need_offset) return absl::OkStatus();
  for (size_t pos = 0; pos + 4 <= extra_size;) {
    const uint64_t id = Le(extra + pos, 2);
    const size_t size = Le(extra + pos + 2, 2);
    const char* field = extra + pos + 4;
    if (size > extra_size - pos - 4) break;
    if (id == kZip64ExtraId) {
      size_t at = 0;
      for (auto [needed, value] : {std::pair{need_uncompressed, &entry.uncompressed_size},
                                   std::pair{need_compressed, &entry.compressed_size},
                                   std::pair{need_offset, &entry.local_header_offset}}) {
        if (!needed) continue;
        if (at + 8 > size) return Invalid(absl::StrCat("short zip64 field for ", entry.name));
        *value = Le(field + at, 8);
        at += 8;
      }
      return absl::OkStatus();
    }
    pos += 4 + size;
  }
  return Invalid(absl::StrCat("entry ", entry.name, " lacks its zip64 sizes"));
}

}  // namespace

absl::StatusOr<std::vector<ZipEntry>> ReadZipDirectory(int fd, uint64_t file_size,
                                                       const std::string& path) {
  if (file_size < kEndOfDirectorySize) return Invalid("too short");
  const size_t tail_size =
      static_cast<size_t>(std::min<uint64_t>(file_size, kEndOfDirectorySize + kMaxCommentSize));
  const uint64_t tail_offset = file_size - tail_size;
  BERTD_ASSIGN_OR_RETURN(std::string tail, ReadAt(fd, tail_offset, tail_size, path));
  size_t eocd = std::string::npos;
  for (size_t i = tail_size - kEndOfDirectorySize + 1; i-- > 0;) {
    if (Le(tail.data() + i, 4) == kEndOfDirectorySig) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) return Invalid("no end of central directory record");
  const char* end = tail.data() + eocd;
  uint64_t entry_count = Le(end + 10, 2);
  uint64_t directory_size = Le(end + 12, 4);
  uint64_t directory_offset = Le(end + 16, 4);

  const uint64_t eocd_offset = tail_offset + eocd;
  if (eocd_offset >= kZip64LocatorSize) {
    BERTD_ASSIGN_OR_RETURN(std::string locator,
                           ReadAt(fd, eocd_offset - kZip64LocatorSize, kZip64LocatorSize, path));
    if (Le(locator.data(), 4) == kZip64LocatorSig) {
      const uint64_t zip64_offset = Le(locator.data() + 8, 8);
      if (zip64_offset > file_size - kZip64EndOfDirectorySize) {
        return Invalid("zip64 end of directory outside the file");
      }
      BERTD_ASSIGN_OR_RETURN(std::string zip64,
                             ReadAt(fd, zip64_offset, kZip64EndOfDirectorySize, path));
      if (Le(zip64.data(), 4) != kZip64EndOfDirectorySig) {
        return Invalid("bad zip64 end of directory signature");
      }
      entry_count = Le(zip64.data() + 32, 8);
      directory_size = Le(zip64.data() + 40, 8);
      directory_offset = Le(zip64.data() + 48, 8);
    }
  }
  if (directory_offset > file_size || directory_size > file_size - directory_offset ||
      directory_size > kMaxDirectoryBytes ||
      entry_count > directory_size / kDirectoryEntrySize) {
    return Invalid("central directory does not fit the file");
  }
  BERTD_ASSIGN_OR_RETURN(std::string directory,
                         ReadAt(fd, directory_offset, static_cast<size_t>(directory_size), path));
  std::vector<ZipEntry> entries;
  entries.reserve(static_cast<size_t>(entry_count));
  size_t pos = 0;
  for (uint64_t i = 0; i < entry_count; ++i) {
    if (directory.size() - pos < kDirectoryEntrySize ||
        Le(directory.data() + pos, 4) != kDirectoryEntrySig) {
      return Invalid(absl::StrCat("central directory entry ", i, " is malformed"));
    }
    const char* h = directory.data() + pos;
    const size_t name_size = Le(h + 28, 2);
    const size_t extra_size = Le(h + 30, 2);
    const size_t comment_size = Le(h + 32, 2);
    if (directory.size() - pos - kDirectoryEntrySize < name_size + extra_size + comment_size) {
      return Invalid(absl::StrCat("central directory entry ", i, " is truncated"));
    }
    ZipEntry entry;
    entry.method = static_cast<uint16_t>(Le(h + 10, 2));
    entry.compressed_size = Le(h + 20, 4);
    entry.uncompressed_size = Le(h + 24, 4);
    entry.local_header_offset = Le(h + 42, 4);
    entry.name.assign(h + kDirectoryEntrySize, name_size);
    BERTD_RETURN_IF_ERROR(
        ApplyZip64Extra(h + kDirectoryEntrySize + name_size, extra_size, entry));
    entries.push_back(std::move(entry));
    pos += kDirectoryEntrySize + name_size + extra_size + comment_size;
  }
  return entries;
}

}  // namespace bertd::model::internal
