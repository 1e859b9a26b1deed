// What the offhost.v1 services (grpc/src/*_service.cc) get from the daemon that hosts them:
// who may call what (Authorizer), the configured datastores, and the audit log. The daemon
// (proxy/daemon/) builds one ServiceContext and registers MakeServices() on its server.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/service_type.h>  // grpc::Service, complete for MakeServices() callers

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace offhost::proxy {
class JobEngine;
}

namespace offhost::grpcapi {

// Ordered: a role may do everything the roles below it may.
enum class Role { kReadOnly = 1, kOperator = 2, kAdmin = 3 };
const char* RoleName(Role role);  // "read-only", "operator", "admin"

struct Principal {
  std::string name;  // the token's or the client certificate's name
  Role role = Role::kReadOnly;
  std::string method;  // "token", "client-certificate"
  std::string peer;    // the caller's address, as gRPC gives it
  // Shown by WhoAmI when known: the client certificate's subject, and when the token and the
  // certificate expire (unix seconds; 0: never, or no certificate).
  std::string client_certificate_subject;
  int64_t token_expires = 0;
  int64_t client_certificate_expires = 0;
};

class Authorizer {
 public:
  virtual ~Authorizer() = default;
  // The caller of this RPC when it may call it: UNAUTHENTICATED when credentials are missing
  // or wrong, PERMISSION_DENIED when its role is below `needed` (both logged with the peer).
  virtual grpc::Status Check(grpc::ServerContext* context, Role needed, Principal* caller) = 0;
};

// One line per restore or download: who, what, where to. Safe from several threads.
class AuditLog {
 public:
  virtual ~AuditLog() = default;
  virtual void Record(const Principal& who, const std::string& action, const std::string& what,
                      const std::string& where) = 0;
};

struct DatastoreConfig {
  std::string name;         // as the API names it ("main")
  std::string path;         // its directory
  std::string description;  // free text from the configuration (Datastore.description)
};

// Driver settings as the snapshot drivers take them (SnapshotRequest.settings): "connect",
// "qmp", "bitmap", "disk.NAME" = source, ...
using DriverSettingsMap = std::map<std::string, std::string>;

// [[host]]: a hypervisor (or a source of exports) and how its driver reaches it.
struct HostConfig {
  std::string name;
  std::string driver;  // nbd, iscsi, image, libvirt, qemu
  DriverSettingsMap settings;
  // BackupSpec.ad_hoc may name this host (disks not in the configuration).
  bool ad_hoc_sources_allowed = false;
  std::string datastore;    // the default for its VMs; may be empty
  std::string description;  // free text from the configuration (Host.description)
  std::string credential;   // the [[credential]] it uses, by name; may be empty
};

// [[vm]]: a VM of the inventory, backed up under `name` (its vm_id).
struct VmConfig {
  std::string name, host;
  std::string datastore;       // empty: the host's
  DriverSettingsMap settings;  // over the host's; "domain" names it to the hypervisor
};

// A secret the daemon holds for drivers (CHAP, NBD TLS, libvirt), shown by name and kind only.
struct CredentialConfig {
  std::string name;
  std::string kind;         // "chap", "nbd-tls", "libvirt"
  std::string description;  // non-secret parts: the CHAP user, a certificate's subject
};

struct ServiceContext {
  Authorizer* authorizer = nullptr;
  AuditLog* audit = nullptr;
  std::vector<DatastoreConfig> datastores;
  std::vector<HostConfig> hosts;
  std::vector<VmConfig> vms;
  // InventoryService.ListCredentials: the daemon's [[credential]] entries, without secrets.
  std::vector<CredentialConfig> credentials;
  // How long InventoryService waits for the drivers of one call (VM_VIEW_FULL,
  // HOST_VIEW_FULL) before it reports a host as not answering.
  std::chrono::milliseconds describe_timeout{20000};
  // Runs backups and verifies; null: the Start* RPCs answer UNAVAILABLE.
  proxy::JobEngine* jobs = nullptr;
  // Where disk and file restores may write on the proxy ([server] restore_roots); empty:
  // nowhere. And the NBD URI prefixes disk restores may write ([server] restore_nbd_targets).
  std::vector<std::string> restore_roots;
  std::vector<std::string> restore_nbd_targets;
  std::string version = "offhost 0.1.0";
  // SystemInfo.start_time: when the daemon made its context, i.e. started.
  std::chrono::system_clock::time_point start_time = std::chrono::system_clock::now();
};

// Every offhost.v1 service, ready for grpc::ServerBuilder::RegisterService; they keep a
// reference to `context`, which must outlive them.
std::vector<std::unique_ptr<grpc::Service>> MakeServices(ServiceContext& context);

}  // namespace offhost::grpcapi
