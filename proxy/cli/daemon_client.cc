#include "daemon_client.h"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli_util.h"
#include "offhost/v1/common.pb.h"
#include "offhost/v1/datastore.grpc.pb.h"

namespace offhost::cli {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

Result<std::string> ReadFile(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("cannot read the " + what + " file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The token from --token-file or $OFFHOST_TOKEN, without the newline editors leave.
Result<std::string> LoadToken(const DaemonOptions& o) {
  std::string token = Env("OFFHOST_TOKEN");
  if (!o.token_file.empty()) {
    OFFHOST_ASSIGN_OR_RETURN(token, ReadFile(o.token_file, "--token-file"));
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  return token;
}

Result<std::shared_ptr<grpc::ChannelCredentials>> TlsCredentials(const DaemonOptions& o) {
  grpc::SslCredentialsOptions ssl;
  if (!o.ca.empty()) {
    OFFHOST_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(o.ca, "--ca"));
  }
  if (o.cert.empty() != o.key.empty()) {
    return Status::InvalidArgument(
        "--cert and --key go together (the client certificate and "
        "its private key)");
  }
  if (!o.cert.empty()) {
    OFFHOST_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadFile(o.cert, "--cert"));
    OFFHOST_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadFile(o.key, "--key"));
  }
  return grpc::SslCredentials(ssl);
}

// The ErrorInfo reason of a failed call ("" when the daemon sent none).
std::string ErrorReason(const grpc::ClientContext& ctx) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find("offhost-error-bin");
  if (it == trailers.end()) return "";
  v1::ErrorInfo info;
  if (!info.ParseFromArray(it->second.data(), static_cast<int>(it->second.size()))) return "";
  return info.reason();
}

}  // namespace

void AddDaemonOptions(CLI::App* cmd, DaemonOptions* o) {
  cmd->add_option("--server", o->server,
                  "offhostd address: unix:PATH, or HOST:PORT over TLS (default $OFFHOST_SERVER, "
                  "else " +
                      std::string(kDefaultServer) + ")");
  cmd->add_option("--token-file", o->token_file,
                  "File holding the daemon's bearer token (default: $OFFHOST_TOKEN)");
  cmd->add_option("--ca", o->ca, "TLS: CA certificate that signed the daemon's certificate");
  cmd->add_option("--cert", o->cert, "TLS: client certificate, when the daemon asks for one");
  cmd->add_option("--key", o->key, "TLS: the client certificate's private key");
}

Result<bool> UseDaemon(const DaemonOptions& o, const std::string& local_dir) {
  if (!local_dir.empty() && !o.server.empty()) {
    return Status::InvalidArgument(
        "--datastore (local mode) and --server (daemon mode) exclude "
        "each other: give one");
  }
  return local_dir.empty();
}

Result<std::unique_ptr<DaemonClient>> DaemonClient::Connect(const DaemonOptions& o) {
  std::string server = !o.server.empty() ? o.server : Env("OFFHOST_SERVER");
  if (server.empty()) server = kDefaultServer;
  OFFHOST_ASSIGN_OR_RETURN(std::string token, LoadToken(o));
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (server.starts_with("unix:")) {
    // A local socket: its file permissions keep others out; the token still gives the role.
    creds = grpc::InsecureChannelCredentials();
  } else {
    OFFHOST_ASSIGN_OR_RETURN(creds, TlsCredentials(o));
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(server, creds, args);
  return std::unique_ptr<DaemonClient>(new DaemonClient(channel, server, token));
}

std::unique_ptr<grpc::ClientContext> DaemonClient::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
  return ctx;
}

int ReportRpcError(const grpc::Status& st, const grpc::ClientContext& ctx,
                   const DaemonClient& client) {
  std::string reason = ErrorReason(ctx);
  std::cerr << "offhost: error: " << st.error_message()
            << (reason.empty() ? "" : " (" + reason + ")") << "\n";
  // The daemon's messages name the API's fields; say what that is on this command line.
  if (reason == "TARGET_EXISTS") std::cerr << "offhost: add --force to replace it\n";
  if (reason == "NOT_A_REGULAR_FILE") {
    std::cerr << "offhost: through offhostd, restore-file fetches one regular file at a time; "
                 "restore a folder with --datastore DIR on the proxy\n";
  }
  switch (st.error_code()) {
    case grpc::StatusCode::UNAUTHENTICATED:
      if (client.has_token()) {
        std::cerr << "offhost: offhostd refused the token from --token-file / $OFFHOST_TOKEN\n";
      } else {
        std::cerr << "offhost: give offhostd a token with --token-file FILE or $OFFHOST_TOKEN\n";
      }
      return kExitAuth;
    case grpc::StatusCode::PERMISSION_DENIED:
      // A restore target or backup source outside what the daemon's configuration allows is
      // refused whatever the role: not a credentials problem.
      if (reason == "RESTORE_TARGET_NOT_ALLOWED" || reason == "SOURCE_NOT_ALLOWED") {
        return kExitFailed;
      }
      std::cerr << "offhost: the token's role may not do this; ask for one with more rights\n";
      return kExitAuth;
    case grpc::StatusCode::UNAVAILABLE:
      std::cerr << "offhost: is offhostd running at " << client.server()
                << "? (--server, $OFFHOST_SERVER; --datastore DIR works without a daemon)\n";
      return kExitUnavailable;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

Result<std::vector<std::string>> DaemonDatastores(const DaemonClient& client,
                                                  const std::string& only, int* exit) {
  if (!only.empty()) return std::vector<std::string>{only};
  auto stub = v1::DatastoreService::NewStub(client.channel());
  v1::ListDatastoresRequest req;
  std::vector<std::string> names;
  do {
    v1::ListDatastoresResponse resp;
    auto ctx = client.Context();
    grpc::Status st = stub->ListDatastores(ctx.get(), req, &resp);
    if (!st.ok()) {
      *exit = ReportRpcError(st, *ctx, client);
      return Status::Unavailable("reported");
    }
    for (const auto& d : resp.datastores()) {
      names.push_back(d.name().substr(d.name().rfind('/') + 1));
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return names;
}

}  // namespace offhost::cli
