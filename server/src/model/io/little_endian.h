#ifndef BERTD_MODEL_IO_LITTLE_ENDIAN_H_
#define BERTD_MODEL_IO_LITTLE_ENDIAN_H_

// Internal to model/io: the file formats bertd reads (safetensors, zip, pickle) store integers
// little-endian, whatever the host.

#include <cstddef>
#include <cstdint>

namespace bertd::model::internal {

// The unsigned integer in the `n` (at most 8) little-endian bytes at `p`.
inline uint64_t LoadLittleEndian(const void* p, size_t n) {
  const auto* bytes = static_cast<const unsigned char*>(p);
  uint64_t value = 0;
  for (size_t i = n; i-- > 0;) value = (value << 8) | bytes[i];
  return value;
}

}  // namespace bertd::model::internal

#endif  // BERTD_MODEL_IO_LITTLE_ENDIAN_H_
