#include "common/rpc/grpc_logging.h"

#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

#include "absl/time/time.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace busyfleet {
namespace {

// gRPC's log lines (errors by default) into spdlog, rate-limited.
void LogFromGrpc(gpr_log_func_args* args) {
  static LogRateLimiter* limiter = new LogRateLimiter(10, absl::Seconds(1));
  uint64_t suppressed = 0;
  if (!limiter->Allow(&suppressed)) return;
  const spdlog::level::level_enum level = args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::err
                                          : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                                                   : spdlog::level::debug;
  if (suppressed > 0) {
    spdlog::log(level, "grpc: {} ({} more gRPC log lines not shown)", args->message, suppressed);
  } else {
    spdlog::log(level, "grpc: {}", args->message);
  }
}

}  // namespace

absl::Status SetupGrpcLogging(absl::string_view component, absl::string_view format, absl::string_view level) {
  BF_RETURN_IF_ERROR(SetupLogging(component, format, level));
  gpr_set_log_function(LogFromGrpc);
  return absl::OkStatus();
}

}  // namespace busyfleet
