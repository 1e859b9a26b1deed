// Line-delimited JSON over a unix socket, with timeouts: the wire form of QMP and of the QEMU
// guest agent. Private to the qemu driver.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "offhost/common/status.h"

namespace offhost::snapshot_drivers {

class JsonSocket {
 public:
  static Result<std::unique_ptr<JsonSocket>> Connect(const std::string& path, const std::string& what);
  ~JsonSocket();
  JsonSocket(const JsonSocket&) = delete;
  JsonSocket& operator=(const JsonSocket&) = delete;

  Status Send(const nlohmann::json& message);
  // The next JSON message; kUnavailable on timeout or when the peer hangs up.
  Result<nlohmann::json> Receive(int timeout_ms);
  const std::string& what() const { return what_; }

 private:
  JsonSocket(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  int fd_;
  std::string what_;
  std::string buffer_;
};

}  // namespace offhost::snapshot_drivers
