#ifndef BERTD_COMMON_BYTE_SIZE_H_
#define BERTD_COMMON_BYTE_SIZE_H_

// Sizes in bytes as people write them in flags ("8GiB", "512M") and read them in messages.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace bertd {

// "1234", "512K", "512KiB", "8G", "8GiB", "1.5T" (K/M/G/T are powers of 1024 either way; a
// trailing "B" is optional). "" and "0" are 0. INVALID_ARGUMENT naming `flag` otherwise.
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text, absl::string_view flag);

// "8 GiB", "1.5 GiB", "512 MiB", "100 bytes".
std::string FormatBytes(int64_t bytes);

}  // namespace bertd

#endif  // BERTD_COMMON_BYTE_SIZE_H_
