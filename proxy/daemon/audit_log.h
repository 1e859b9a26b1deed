// The audit log: who restored or downloaded what, to where. An append-only file, one JSON
// object per line:
//   {"time":"2026-11-25T01:30:49.123Z","who":"veeam-prod","role":"operator","method":"token",
//    "peer":"ipv4:10.20.0.9:53122","action":"restore-file","what":"...","where":"..."}
// Each record is written with one write(2) on an O_APPEND descriptor and fsync'd before
// Record returns, so a record that returned survives a crash and lines never interleave.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "offhost/common/status.h"
#include "offhost/grpc/service_context.h"

namespace offhost::daemon {

class FileAuditLog : public grpcapi::AuditLog {
 public:
  // Opens (creating it, mode 0640, and its folder) the file at `path` for appending.
  static Result<std::unique_ptr<FileAuditLog>> Open(const std::string& path);
  ~FileAuditLog() override;

  // A record that cannot be written is reported in the daemon's log with its content, so it
  // is not lost silently; the RPC that made it has already happened.
  void Record(const grpcapi::Principal& who, const std::string& action, const std::string& what,
              const std::string& where) override;

 private:
  FileAuditLog(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_;
  std::mutex mu_;  // one record at a time: write then fsync
};

}  // namespace offhost::daemon
