#include "qmp_client.h"

#include <unistd.h>

namespace offhost::snapshot_drivers {

Result<std::unique_ptr<QmpClient>> QmpClient::Connect(const std::string& path) {
  OFFHOST_ASSIGN_OR_RETURN(auto sock, JsonSocket::Connect(path, "QMP"));
  auto greeting = sock->Receive(5000);
  if (!greeting.ok() || !greeting->contains("QMP")) {
    return Status::InvalidArgument(path + " is not a QEMU QMP socket (no QMP greeting); give "
                                   "the socket of QEMU's -qmp unix:PATH,server=on");
  }
  std::unique_ptr<QmpClient> c(new QmpClient(std::move(sock)));
  OFFHOST_RETURN_IF_ERROR(c->Execute("qmp_capabilities").status());
  return c;
}

Result<nlohmann::json> QmpClient::Execute(const std::string& command,
                                          const nlohmann::json& arguments, int timeout_ms) {
  int id = next_id_++;
  nlohmann::json msg = {{"execute", command}, {"id", id}};
  if (!arguments.empty()) msg["arguments"] = arguments;
  OFFHOST_RETURN_IF_ERROR(socket_->Send(msg));
  for (;;) {
    OFFHOST_ASSIGN_OR_RETURN(nlohmann::json reply, socket_->Receive(timeout_ms));
    if (reply.contains("event")) continue;  // asynchronous events are not answers
    if (reply.value("id", -1) != id) continue;
    if (reply.contains("error")) {
      return Status::FailedPrecondition("QMP " + command + ": " +
                                        reply["error"].value("desc", reply["error"].dump()));
    }
    return reply.value("return", nlohmann::json::object());
  }
}

Result<std::unique_ptr<GuestAgentClient>> GuestAgentClient::Connect(const std::string& path,
                                                                    int timeout_ms) {
  OFFHOST_ASSIGN_OR_RETURN(auto sock, JsonSocket::Connect(path, "guest agent"));
  std::unique_ptr<GuestAgentClient> c(new GuestAgentClient(std::move(sock)));
  // guest-sync with a fresh id flushes any stale reply from an earlier client.
  int64_t token = static_cast<int64_t>(::getpid()) * 1000 + 7;
  OFFHOST_RETURN_IF_ERROR(c->socket_->Send({{"execute", "guest-sync"}, {"arguments", {{"id", token}}}}));
  for (;;) {
    OFFHOST_ASSIGN_OR_RETURN(auto reply, c->socket_->Receive(timeout_ms));
    if (reply.value("return", nlohmann::json()) == token) return c;
  }
}

Result<nlohmann::json> GuestAgentClient::Execute(const std::string& command, int timeout_ms) {
  OFFHOST_RETURN_IF_ERROR(socket_->Send({{"execute", command}}));
  OFFHOST_ASSIGN_OR_RETURN(auto reply, socket_->Receive(timeout_ms));
  if (reply.contains("error")) {
    return Status::FailedPrecondition("guest agent " + command + ": " +
                                      reply["error"].value("desc", reply["error"].dump()));
  }
  return reply.value("return", nlohmann::json());
}

}  // namespace offhost::snapshot_drivers
