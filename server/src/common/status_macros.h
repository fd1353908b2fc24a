#ifndef BERTD_COMMON_STATUS_MACROS_H_
#define BERTD_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Early-return helpers for absl::Status / absl::StatusOr plumbing.
#define BERTD_RETURN_IF_ERROR(expr)                  \
  do {                                               \
    ::absl::Status bertd_status_ = (expr);           \
    if (!bertd_status_.ok()) return bertd_status_;   \
  } while (0)

#define BERTD_STATUS_CONCAT_INNER_(a, b) a##b
#define BERTD_STATUS_CONCAT_(a, b) BERTD_STATUS_CONCAT_INNER_(a, b)

#define BERTD_ASSIGN_OR_RETURN(lhs, expr) \
  BERTD_ASSIGN_OR_RETURN_IMPL_(BERTD_STATUS_CONCAT_(bertd_statusor_, __LINE__), lhs, expr)

#define BERTD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return statusor.status();           \
  lhs = std::move(statusor).value()

#endif  // BERTD_COMMON_STATUS_MACROS_H_
