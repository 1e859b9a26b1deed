// The CLI's connection to offhostd (docs/api.md "Connecting"): which mode a command runs in,
// the channel, per-call credentials, and gRPC errors turned into offhost exit codes.
#pragma once

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::cli {

inline constexpr const char* kDefaultServer = "unix:/run/offhostd/offhostd.sock";

// How to reach the daemon. The token itself is never an option: command lines are visible to
// every user of the host (ps, /proc).
struct DaemonOptions {
  std::string server;      // unix:PATH or HOST:PORT (TLS); default $OFFHOST_SERVER
  std::string token_file;  // default: $OFFHOST_TOKEN holds the token itself
  std::string ca, cert, key;
};

// Adds --server, --token-file, --ca, --cert and --key to a command that can run either way.
void AddDaemonOptions(CLI::App* cmd, DaemonOptions* o);

// The mode rule (README.md "Against the daemon"): a command runs locally on a datastore
// directory when one is named (`local_dir` non-empty), else against the daemon at --server,
// $OFFHOST_SERVER or the default socket. Naming both is a usage error.
Result<bool> UseDaemon(const DaemonOptions& o, const std::string& local_dir);

class DaemonClient {
 public:
  static Result<std::unique_ptr<DaemonClient>> Connect(const DaemonOptions& o);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const std::string& server() const { return server_; }
  bool has_token() const { return !token_.empty(); }
  // A context for one call, carrying the token when there is one.
  std::unique_ptr<grpc::ClientContext> Context() const;

 private:
  DaemonClient(std::shared_ptr<grpc::Channel> channel, std::string server, std::string token)
      : channel_(std::move(channel)), server_(std::move(server)), token_(std::move(token)) {}
  std::shared_ptr<grpc::Channel> channel_;
  std::string server_;
  std::string token_;
};

// Prints what a failed call means ("offhost: error: ... (REASON)"), with a hint for missing
// credentials, and returns its exit code: kExitAuth for UNAUTHENTICATED/PERMISSION_DENIED,
// kExitUsage for INVALID_ARGUMENT, kExitUnavailable when the daemon cannot be reached.
int ReportRpcError(const grpc::Status& st, const grpc::ClientContext& ctx,
                   const DaemonClient& client);

// The daemon's datastores a maintenance command works on: `only` when given, else all of
// them (ListDatastores). On a failed call the error is printed and `*exit` set.
Result<std::vector<std::string>> DaemonDatastores(const DaemonClient& client,
                                                  const std::string& only, int* exit);

}  // namespace offhost::cli
