#ifndef BUSYFLEET_COMMON_STATUS_MACROS_H_
#define BUSYFLEET_COMMON_STATUS_MACROS_H_

// Abseil 20220623 has no RETURN_IF_ERROR; these are ours.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define BF_STATUS_CONCAT_INNER_(a, b) a##b
#define BF_STATUS_CONCAT_(a, b) BF_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define BF_RETURN_IF_ERROR(expr)                        \
  do {                                                  \
    ::absl::Status bf_status_ = (expr);                 \
    if (!bf_status_.ok()) return bf_status_;            \
  } while (false)

// `lhs = value of expr`, or returns its status from the enclosing function.
#define BF_ASSIGN_OR_RETURN(lhs, expr) \
  BF_ASSIGN_OR_RETURN_IMPL_(BF_STATUS_CONCAT_(bf_statusor_, __LINE__), lhs, expr)
#define BF_ASSIGN_OR_RETURN_IMPL_(var, lhs, expr) \
  auto var = (expr);                              \
  if (!var.ok()) return std::move(var).status();  \
  lhs = std::move(var).value()

#endif  // BUSYFLEET_COMMON_STATUS_MACROS_H_
