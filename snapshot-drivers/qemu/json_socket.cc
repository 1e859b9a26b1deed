#include "json_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace offhost::snapshot_drivers {

Result<std::unique_ptr<JsonSocket>> JsonSocket::Connect(const std::string& path,
                                                        const std::string& what) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) {
    return Status::InvalidArgument(what + " socket path " + path + " is too long");
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("socket", errno);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    return Status::Unavailable("cannot connect to " + what + " socket " + path + ": " +
                               std::strerror(err) + "; check the path and that the process runs");
  }
  return std::unique_ptr<JsonSocket>(new JsonSocket(fd, what + " " + path));
}

JsonSocket::~JsonSocket() { ::close(fd_); }

Status JsonSocket::Send(const nlohmann::json& message) {
  std::string line = message.dump() + "\n";
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::send(fd_, line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("send to " + what_, errno);
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Result<nlohmann::json> JsonSocket::Receive(int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded()) {
        return Status::Corruption(what_ + " sent something that is not JSON: " + line.substr(0, 80));
      }
      return j;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return Status::Unavailable(what_ + " did not answer within " + std::to_string(timeout_ms) + " ms");
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno("poll " + what_, errno);
    if (r == 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("receive from " + what_, errno);
    if (n == 0) return Status::Unavailable(what_ + " closed the connection");
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace offhost::snapshot_drivers
