#include "audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "log.h"

namespace offhost::daemon {
namespace {

// RFC 3339 UTC with milliseconds.
std::string Now() {
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  size_t n = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + n, sizeof(text) - n, ".%03dZ", static_cast<int>(millis.count()));
  return text;
}

Status WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write", errno);
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<FileAuditLog>> FileAuditLog::Open(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) {
    return Status::IOError("open audit log " + path + ": create its folder: " + ec.message());
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    return Status::FromErrno("open audit log " + path, errno)
        .WithContext("check server.audit_log and the daemon's permissions");
  }
  return std::unique_ptr<FileAuditLog>(new FileAuditLog(path, fd));
}

FileAuditLog::~FileAuditLog() { ::close(fd_); }

void FileAuditLog::Record(const grpcapi::Principal& who, const std::string& action,
                          const std::string& what, const std::string& where) {
  nlohmann::json record = {{"time", Now()},        {"who", who.name},  {"role", RoleName(who.role)},
                           {"method", who.method}, {"peer", who.peer}, {"action", action},
                           {"what", what},         {"where", where}};
  // Guest file names need not be UTF-8; replace bad bytes rather than lose the record.
  std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> lock(mu_);
  Status status = WriteAll(fd_, line);
  if (status.ok() && ::fdatasync(fd_) != 0) status = Status::FromErrno("fdatasync", errno);
  if (!status.ok()) {
    Log(LogLevel::kError, "audit log " + path_ + ": " + status.message() + "; record: " + line);
  }
}

}  // namespace offhost::daemon
