// offhostd's server: the offhost.v1 services (grpcapi::MakeServices), gRPC health and server
// reflection, on the unix socket and on each TLS `listen` address of the configuration.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "audit_log.h"
#include "authorizer.h"
#include "config.h"
#include "offhost/proxy/job_engine.h"

namespace offhost::daemon {

class Daemon {
 public:
  // Opens the audit log and the job database (marking jobs a previous run left running
  // INTERRUPTED), builds the authorizer and the services, and starts listening. Nothing
  // listens when it fails. Then, on a thread of its own (a host that does not answer must
  // not hold up the start), releases what the interrupted backups left on their hypervisors
  // (grpcapi::ReleaseInterruptedBackups).
  static Result<std::unique_ptr<Daemon>> Start(DaemonConfig config);

  // Reports NOT_SERVING, cancels the running jobs and waits for them (they end INTERRUPTED,
  // their views released; WatchJob streams end UNAVAILABLE), stops accepting calls, gives
  // running calls `grace` to finish and then cancels them, and removes the unix socket.
  void Shutdown(std::chrono::seconds grace);
  ~Daemon();

 private:
  explicit Daemon(DaemonConfig config) : config_(std::move(config)) {}
  Status Listen();

  DaemonConfig config_;
  std::unique_ptr<TokenAuthorizer> authorizer_;
  std::unique_ptr<FileAuditLog> audit_;
  std::unique_ptr<proxy::JobEngine> jobs_;  // outlives the services using it
  grpcapi::ServiceContext context_;         // the services keep a reference to it
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> stopping_{false};
  std::thread leftovers_;  // ReleaseInterruptedBackups; joined by Shutdown
};

}  // namespace offhost::daemon
