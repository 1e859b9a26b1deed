#include "log.h"

#include <grpc/support/log.h>
#include <unistd.h>

namespace offhost::daemon {

void Log(LogLevel level, const std::string& message) {
  std::string line = "<" + std::to_string(static_cast<int>(level)) + ">offhostd: " + message;
  line += '\n';
  // stderr is unbuffered; a single write keeps the line whole. A failed log write has
  // nowhere better to go, so its result is ignored.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

namespace {

void GrpcLogToDaemonLog(gpr_log_func_args* args) {
  LogLevel level = LogLevel::kInfo;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) level = LogLevel::kError;
  Log(level, std::string("grpc: ") + args->message);
}

}  // namespace

void RouteGrpcLogging() { gpr_set_log_function(GrpcLogToDaemonLog); }

}  // namespace offhost::daemon
