// Early-return helpers for absl::Status / absl::StatusOr. Debian's abseil (20220623) does not
// ship RETURN_IF_ERROR or ASSIGN_OR_RETURN, so crib defines them here, once.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CRIB_STATUS_CONCAT_INNER(a, b) a##b
#define CRIB_STATUS_CONCAT(a, b) CRIB_STATUS_CONCAT_INNER(a, b)

// Returns the status of `expr` from the enclosing function unless it is OK.
#define RETURN_IF_ERROR(expr)                                       \
  do {                                                              \
    if (::absl::Status crib_status_ = (expr); !crib_status_.ok()) { \
      return crib_status_;                                          \
    }                                                               \
  } while (false)

// ASSIGN_OR_RETURN(auto x, MakeX()); returns the error of a failed StatusOr.
#define ASSIGN_OR_RETURN(lhs, expr) \
  CRIB_ASSIGN_OR_RETURN_IMPL(CRIB_STATUS_CONCAT(crib_statusor_, __LINE__), lhs, expr)

#define CRIB_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) {                                 \
    return std::move(statusor).status();                \
  }                                                     \
  lhs = std::move(statusor).value()
