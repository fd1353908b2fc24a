#ifndef BERTD_COMMON_NAMES_H_
#define BERTD_COMMON_NAMES_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace bertd {

// Longest name a client may give a model, version, dataset or job.
inline constexpr size_t kMaxNameLength = 128;

// Checks a client-supplied name (model, version, dataset, job) that may become a file or directory
// name under the data directory: 1..kMaxNameLength characters from [A-Za-z0-9._-], not starting
// with '.' (so never "." or ".." or a hidden file). Separators, absolute paths, NUL and every other
// byte are refused. INVALID_ARGUMENT names `field` and says what was wrong; the name is quoted only
// when it is printable, so a hostile name cannot forge log lines.
absl::Status ValidateName(absl::string_view field, absl::string_view name);

}  // namespace bertd

#endif  // BERTD_COMMON_NAMES_H_
