#include "daemon.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "log.h"
#include "offhost/grpc/leftovers.h"
#include "pem.h"

namespace offhost::daemon {
namespace {

// True when a server accepts connections on the unix socket at `path`. gRPC removes an
// existing socket file before binding, which would silently steal the socket of a running
// daemon; a stale file from a crash refuses the connection and may be replaced.
bool SocketInUse(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool in_use = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return in_use;
}

Status PrepareUnixSocket(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::InvalidArgument("server.unix_socket " + path + ": longer than " +
                                   std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                   " bytes, the limit of a unix socket path; use a shorter one");
  }
  if (SocketInUse(path)) {
    return Status::FailedPrecondition("unix socket " + path +
                                      ": another server is listening on it; stop the other "
                                      "offhostd or set another server.unix_socket");
  }
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    // Group members may use the socket (0660), so its folder lets the group in too.
    std::filesystem::create_directories(dir, ec);
    if (!ec) std::filesystem::permissions(dir, std::filesystem::perms(0750), ec);
    if (ec)
      return Status::IOError("create the folder of unix socket " + path + ": " + ec.message());
  }
  return Status::OK();
}

Result<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials(const TlsConfig& tls) {
  OFFHOST_ASSIGN_OR_RETURN(std::string certificate, ReadFileText(tls.certificate));
  OFFHOST_ASSIGN_OR_RETURN(std::string private_key, ReadFileText(tls.private_key));
  // With a client CA, gRPC asks for a certificate but accepts any: the Authorizer verifies it
  // per call, so a bad one is answered with a reason instead of a failed handshake.
  grpc::SslServerCredentialsOptions options(
      tls.client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                            : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  if (!tls.client_ca.empty()) {
    // Sent in the handshake as the list of acceptable issuers.
    OFFHOST_ASSIGN_OR_RETURN(options.pem_root_certs, ReadFileText(tls.client_ca));
  }
  options.pem_key_cert_pairs.push_back({private_key, certificate});
  return grpc::SslServerCredentials(options);
}

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::Start(DaemonConfig config) {
  std::unique_ptr<Daemon> daemon(new Daemon(std::move(config)));
  const DaemonConfig& c = daemon->config_;
  std::string client_ca;
  if (c.tls && !c.tls->client_ca.empty()) {
    OFFHOST_ASSIGN_OR_RETURN(client_ca, ReadFileText(c.tls->client_ca));
  }
  OFFHOST_ASSIGN_OR_RETURN(daemon->authorizer_, TokenAuthorizer::Create(c.tokens, client_ca));
  OFFHOST_ASSIGN_OR_RETURN(daemon->audit_, FileAuditLog::Open(c.audit_log));
  // Before the job database: a second daemon on the same configuration is told about the
  // socket, the clearer of the two things it would share.
  OFFHOST_RETURN_IF_ERROR(PrepareUnixSocket(c.unix_socket));
  OFFHOST_ASSIGN_OR_RETURN(daemon->jobs_, proxy::JobEngine::Open({.state_dir = c.state_dir}));
  daemon->context_.authorizer = daemon->authorizer_.get();
  daemon->context_.audit = daemon->audit_.get();
  daemon->context_.datastores = c.datastores;
  daemon->context_.hosts = c.hosts;
  for (const CredentialConfig& cred : c.credentials) {
    // Only what may be shown: the secret stays in the hosts' driver settings.
    std::string shown = (cred.kind == "chap" ? "CHAP user " : "user ") + cred.user;
    if (!cred.description.empty()) shown += "; " + cred.description;
    daemon->context_.credentials.push_back({cred.name, cred.kind, shown});
  }
  daemon->context_.vms = c.vms;
  daemon->context_.restore_roots = c.restore_roots;
  daemon->context_.restore_nbd_targets = c.restore_nbd_targets;
  daemon->context_.jobs = daemon->jobs_.get();
  daemon->services_ = grpcapi::MakeServices(daemon->context_);
  OFFHOST_RETURN_IF_ERROR(daemon->Listen());
  daemon->leftovers_ = std::thread([d = daemon.get()] {
    grpcapi::ReleaseInterruptedBackups(d->context_, d->stopping_,
                                       [](bool problem, const std::string& m) {
                                         Log(problem ? LogLevel::kWarning : LogLevel::kNotice, m);
                                       });
  });
  if (c.tokens.empty()) {
    Log(LogLevel::kWarning, c.file +
                                " has no [[token]]: every call but health and reflection "
                                "is refused; add one (`offhostd hash-token`)");
  }
  return daemon;
}

Status Daemon::Listen() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::vector<std::string> addresses = {"unix:" + config_.unix_socket};
  builder.AddListeningPort(addresses[0], grpc::InsecureServerCredentials());
  if (!config_.listen.empty()) {
    OFFHOST_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> tls,
                             TlsCredentials(*config_.tls));
    for (const std::string& address : config_.listen) {
      builder.AddListeningPort(address, tls);
      addresses.push_back(address);
    }
  }
  for (const auto& service : services_) builder.RegisterService(service.get());
  // gRPC creates the socket file: the umask makes it 0660 (owner and group) from the start.
  mode_t old_umask = ::umask(0117);
  server_ = builder.BuildAndStart();
  ::umask(old_umask);
  if (!server_) {
    std::string all;
    for (const std::string& a : addresses) all += (all.empty() ? "" : ", ") + a;
    return Status::Unavailable("listen on " + all +
                               ": gRPC could not bind one of them (its message is above): the "
                               "address is in use or not an address of this host");
  }
  std::string mtls = config_.tls && !config_.tls->client_ca.empty()
                         ? " (TLS, client certificate and token)"
                         : " (TLS, token)";
  Log(LogLevel::kInfo, "listening on " + addresses[0] + " (token)");
  for (size_t i = 1; i < addresses.size(); ++i) {
    Log(LogLevel::kInfo, "listening on " + addresses[i] + mtls);
  }
  return Status::OK();
}

Daemon::~Daemon() {
  stopping_ = true;
  if (leftovers_.joinable()) leftovers_.join();
}

void Daemon::Shutdown(std::chrono::seconds grace) {
  stopping_ = true;
  if (leftovers_.joinable()) leftovers_.join();
  server_->GetHealthCheckService()->Shutdown();
  jobs_->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  ::unlink(config_.unix_socket.c_str());
}

}  // namespace offhost::daemon
