// offhostd's configuration: a TOML file (default /etc/offhostd/offhostd.toml), read once at
// start. Every error names the file, the line and the key, and says what to do; the daemon does
// not start with any error. offhostd.example.toml beside this file shows every key.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offhost/common/status.h"
#include "offhost/grpc/service_context.h"

namespace offhost::daemon {

inline constexpr char kDefaultConfigPath[] = "/etc/offhostd/offhostd.toml";

// [server.tls]: the TLS identity of the TCP listeners. Relative paths are taken from the
// configuration file's folder; the files are checked (readable PEM, key matches) at load.
struct TlsConfig {
  std::string certificate;  // PEM server certificate (chain), required
  std::string private_key;  // PEM key of `certificate`, required
  // PEM CA certificates. Empty: no client certificate is asked for. Set: every TLS caller must
  // present a certificate signed by one of them and valid now (checked per call by the
  // Authorizer, so a bad certificate gets UNAUTHENTICATED with a reason, not a failed
  // handshake), in addition to its token.
  std::string client_ca;
};

// [[token]]: a bearer token, stored as the SHA-256 of its text (`offhostd hash-token`).
struct TokenConfig {
  std::string name;                  // who it is, as WhoAmI and the audit log show it
  std::array<uint8_t, 32> sha256{};  // SHA-256 of the token
  grpcapi::Role role = grpcapi::Role::kReadOnly;
};

// [[credential]]: a secret drivers use, named by hosts (`credential = "NAME"`). The secret
// is read at start from `secret_file` (mode 0600 or stricter, owned by offhostd's user or
// root); it is never logged, shown by the API (ListCredentials gives name, kind and user) or
// written into jobs.
struct CredentialConfig {
  std::string name;
  std::string kind;  // "chap": an iSCSI CHAP user and secret (iscsi hosts)
  std::string user;
  std::string secret_file;  // as configured, resolved against the configuration's folder
  std::string secret;       // the file's content without its final newline
  std::string description;  // optional free text
};

struct DaemonConfig {
  std::string file;  // where it was read from, for messages

  // [server]
  std::string unix_socket = "/run/offhostd/offhostd.sock";  // made with mode 0660
  // TCP listeners, "HOST:PORT" or "[IPV6]:PORT", all TLS; none by default. Backup-network
  // addresses only: 0.0.0.0 and [::] are refused unless allow_wildcard.
  std::vector<std::string> listen;
  bool allow_wildcard = false;
  std::string audit_log = "/var/log/offhostd/audit.log";  // one JSON line per record
  std::string state_dir = "/var/lib/offhostd";            // the job database (made if missing)
  std::optional<TlsConfig> tls;                           // required when `listen` is not empty
  // Folders (absolute) that disk and file restores may write into; empty: restores to the
  // proxy's file system are refused. Targets are checked after resolving `..` and symlinks.
  std::vector<std::string> restore_roots;
  // URI prefixes ("nbd://10.20.0.9:10809/") of NBD exports disk restores may write; empty:
  // NBD restore targets are refused.
  std::vector<std::string> restore_nbd_targets;

  std::vector<TokenConfig> tokens;
  std::vector<grpcapi::DatastoreConfig> datastores;
  std::vector<CredentialConfig> credentials;  // [[credential]]
  std::vector<grpcapi::HostConfig> hosts;     // [[host]]
  std::vector<grpcapi::VmConfig> vms;         // [[vm]]
};

// Reads and validates the file at `path`.
Result<DaemonConfig> LoadConfig(const std::string& path);

// Validates `text` as if read from `path` (for messages and relative TLS paths). The error
// lists every problem found, one per line: "PATH:LINE: KEY: what is wrong; what to do".
Result<DaemonConfig> ParseConfig(std::string_view text, const std::string& path);

// "host:port" is a wildcard address (0.0.0.0, [::], "*", or no host): it would listen on
// every network of the proxy, production networks included.
bool IsWildcardAddress(std::string_view address);

}  // namespace offhost::daemon
