#ifndef BERTD_FUZZ_FUZZ_UTIL_H_
#define BERTD_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"

namespace bertd::fuzz {

// The loaders under test read files (they mmap/pread by path), so each input is written to one
// scratch file per process. /dev/shm keeps it in memory when available.
inline const std::string& ScratchPath() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (dir ? dir : "/tmp");
    return base + "/bertd-fuzz-" + std::to_string(getpid());
  }();
  return path;
}

inline const std::string& WriteScratch(const uint8_t* data, size_t size) {
  const std::string& path = ScratchPath();
  FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, file) != size) std::abort();
  std::fclose(file);
  return path;
}

// With BERTD_FUZZ_VERBOSE set, prints what a loader said about an input (to check seeds by hand).
inline void Report(const absl::Status& status) {
  static const bool verbose = std::getenv("BERTD_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "bertd-fuzz: %s\n", status.ToString().c_str());
}

}  // namespace bertd::fuzz

#endif  // BERTD_FUZZ_FUZZ_UTIL_H_
