// A QMP client: the capabilities handshake, then commands whose errors become Status.
#pragma once

#include <memory>

#include "json_socket.h"

namespace offhost::snapshot_drivers {

class QmpClient {
 public:
  static Result<std::unique_ptr<QmpClient>> Connect(const std::string& path);
  // Runs a command; returns its "return" value, or its error class and description.
  Result<nlohmann::json> Execute(const std::string& command,
                                 const nlohmann::json& arguments = nlohmann::json::object(),
                                 int timeout_ms = 30000);

 private:
  explicit QmpClient(std::unique_ptr<JsonSocket> socket) : socket_(std::move(socket)) {}
  std::unique_ptr<JsonSocket> socket_;
  int next_id_ = 1;
};

// The QEMU guest agent: sync, then freeze / thaw / status.
class GuestAgentClient {
 public:
  static Result<std::unique_ptr<GuestAgentClient>> Connect(const std::string& path, int timeout_ms);
  Result<nlohmann::json> Execute(const std::string& command, int timeout_ms);

 private:
  explicit GuestAgentClient(std::unique_ptr<JsonSocket> socket) : socket_(std::move(socket)) {}
  std::unique_ptr<JsonSocket> socket_;
};

}  // namespace offhost::snapshot_drivers
