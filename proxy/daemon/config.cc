#include "config.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <set>

#include "offhost/proxy/schedule.h"
#include "pem.h"

namespace offhost::daemon {
namespace {

const char* TypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

std::string Join(std::initializer_list<std::string_view> words) {
  std::string out;
  for (std::string_view w : words) out += (out.empty() ? "" : ", ") + std::string(w);
  return out;
}

std::string Child(std::string_view prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : std::string(prefix) + "." + std::string(key);
}

// Walks the parsed document, collecting every problem (not only the first), so one run of
// `offhostd --check-config` shows all of them.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  void Error(const toml::source_region& where, std::string_view key, const std::string& what) {
    // Tables made implicitly ([server.tls] makes [server]) have no line of their own.
    std::string line = where.begin.line > 0 ? std::to_string(where.begin.line) + ":" : "";
    errors_.push_back(file_ + ":" + line + " " + std::string(key) + ": " + what);
  }

  // Reports each key of `table` that is not in `known`.
  void CheckKeys(const toml::table& table, std::string_view prefix,
                 std::initializer_list<std::string_view> known) {
    for (auto&& [key, node] : table) {
      bool ok = false;
      for (std::string_view k : known) ok = ok || key.str() == k;
      if (ok) continue;
      std::string where = prefix.empty() ? "at the top level" : "in [" + std::string(prefix) + "]";
      Error(key.source(), Child(prefix, key.str()),
            "unknown key " + where + "; the known keys are " + Join(known) +
                " (check the spelling and the [section] it is in)");
    }
  }

  // The node at `key` when present and of type T; reports a wrong type.
  template <typename T>
  const toml::node* Typed(const toml::table& table, std::string_view prefix, std::string_view key,
                          const char* expected) {
    const toml::node* node = table.get(key);
    if (node == nullptr) return nullptr;
    if (!node->is<T>()) {
      Error(node->source(), Child(prefix, key),
            std::string("must be ") + expected + ", not " + TypeName(node->type()));
      return nullptr;
    }
    return node;
  }

  // Reads an optional string into `out` (left as is when absent).
  const toml::node* String(const toml::table& table, std::string_view prefix, std::string_view key,
                           std::string* out) {
    const toml::node* node = Typed<std::string>(table, prefix, key, "a string");
    if (node != nullptr) *out = node->as_string()->get();
    return node;
  }

  // A string that must be present and not empty.
  const toml::node* RequiredString(const toml::table& table, std::string_view prefix,
                                   std::string_view key, std::string* out) {
    if (table.get(key) == nullptr) {
      Error(table.source(), Child(prefix, key), "missing; add it to this table");
      return nullptr;
    }
    const toml::node* node = String(table, prefix, key, out);
    if (node != nullptr && out->empty()) {
      Error(node->source(), Child(prefix, key), "must not be empty");
      return nullptr;
    }
    return node;
  }

  // An optional integer in [lo, hi].
  const toml::node* Int(const toml::table& table, std::string_view prefix, std::string_view key,
                        int lo, int hi, int* out) {
    const toml::node* node = Typed<int64_t>(table, prefix, key, "an integer");
    if (node == nullptr) return nullptr;
    int64_t v = node->as_integer()->get();
    if (v < lo || v > hi) {
      Error(node->source(), Child(prefix, key),
            std::to_string(v) + " is out of range; use " + std::to_string(lo) + " to " +
                std::to_string(hi));
      return nullptr;
    }
    *out = static_cast<int>(v);
    return node;
  }

  // An optional string turned into T by `parse` (a Result<T>); the parse error is reported.
  template <typename T, typename Parse>
  bool Parsed(const toml::table& table, std::string_view prefix, std::string_view key, Parse parse,
              T* out) {
    std::string text;
    const toml::node* node = String(table, prefix, key, &text);
    if (node == nullptr) return false;
    auto value = parse(text);
    if (!value.ok()) {
      Error(node->source(), Child(prefix, key), value.status().message());
      return false;
    }
    *out = std::move(value).value();
    return true;
  }

  void Bool(const toml::table& table, std::string_view prefix, std::string_view key, bool* out) {
    const toml::node* node = Typed<bool>(table, prefix, key, "true or false");
    if (node != nullptr) *out = node->as_boolean()->get();
  }

  const std::string& file() const { return file_; }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string file_;
  std::vector<std::string> errors_;
};

// The host part of "host:port" / "[v6]:port"; nullopt when the port is missing or not 1-65535.
std::optional<std::string_view> HostOf(std::string_view address) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = address.substr(0, colon), port = address.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return std::nullopt;  // a bare IPv6 address: its port is ambiguous
  }
  return host;
}

void ReadListen(Reader& r, const toml::table& server, DaemonConfig& config) {
  const toml::node* node = r.Typed<toml::array>(server, "server", "listen", "an array of strings");
  if (node == nullptr) return;
  const toml::array& listen = *node->as_array();
  for (size_t i = 0; i < listen.size(); ++i) {
    std::string key = "server.listen[" + std::to_string(i) + "]";
    const toml::node& item = listen[i];
    if (!item.is_string()) {
      r.Error(item.source(), key, std::string("must be a string, not ") + TypeName(item.type()));
      continue;
    }
    std::string address = item.as_string()->get();
    if (address.starts_with("unix:")) {
      r.Error(item.source(), key, "unix sockets go in server.unix_socket; listen is for TCP");
    } else if (!HostOf(address)) {
      r.Error(item.source(), key,
              "\"" + address + "\" is not HOST:PORT; write e.g. \"10.20.0.4:8740\" or " +
                  "\"[fd00::4]:8740\"");
    } else {
      config.listen.push_back(address);
    }
  }
}

void CheckWildcards(Reader& r, const toml::table& server, const DaemonConfig& config) {
  if (config.allow_wildcard) return;
  const toml::array* listen = server.get_as<toml::array>("listen");
  for (size_t i = 0; listen != nullptr && i < listen->size(); ++i) {
    const std::string* address =
        (*listen)[i].is_string() ? &(*listen)[i].as_string()->get() : nullptr;
    if (address == nullptr || !IsWildcardAddress(*address)) continue;
    r.Error((*listen)[i].source(), "server.listen[" + std::to_string(i) + "]",
            "\"" + *address + "\" listens on every network of the proxy, production " +
                "networks included; name the backup-network address, or set " +
                "server.allow_wildcard = true if that is really meant");
  }
}

std::string Resolve(const std::string& config_file, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  return (std::filesystem::path(config_file).parent_path() / p).lexically_normal().string();
}

// Reads and checks one PEM file of [server.tls]; returns its certificates (none for a key).
std::vector<X509Ptr> CheckPemFile(Reader& r, const toml::node& node, const std::string& key,
                                  const std::string& path, bool is_key, X509* cert_of_key) {
  Result<std::string> text = ReadFileText(path);
  if (!text.ok()) {
    r.Error(node.source(), key,
            text.status().message() + "; fix the path (relative paths " +
                "start at the configuration file's folder)");
    return {};
  }
  if (is_key) {
    if (cert_of_key == nullptr) return {};  // the certificate's own error was reported
    Status st = CheckPrivateKey(*text, cert_of_key);
    if (!st.ok()) r.Error(node.source(), key, path + ": " + st.message());
    return {};
  }
  Result<std::vector<X509Ptr>> certs = ParseCertificates(*text);
  if (!certs.ok()) {
    r.Error(node.source(), key, path + ": " + certs.status().message());
    return {};
  }
  return std::move(certs).value();
}

void ReadTls(Reader& r, const toml::table& tls_table, DaemonConfig& config) {
  r.CheckKeys(tls_table, "server.tls", {"certificate", "private_key", "client_ca"});
  TlsConfig tls;
  const toml::node* cert =
      r.RequiredString(tls_table, "server.tls", "certificate", &tls.certificate);
  const toml::node* key =
      r.RequiredString(tls_table, "server.tls", "private_key", &tls.private_key);
  const toml::node* ca = r.String(tls_table, "server.tls", "client_ca", &tls.client_ca);
  std::vector<X509Ptr> server_chain;
  if (cert != nullptr) {
    tls.certificate = Resolve(r.file(), tls.certificate);
    server_chain =
        CheckPemFile(r, *cert, "server.tls.certificate", tls.certificate, false, nullptr);
  }
  if (key != nullptr) {
    tls.private_key = Resolve(r.file(), tls.private_key);
    X509* leaf = server_chain.empty() ? nullptr : server_chain.front().get();
    CheckPemFile(r, *key, "server.tls.private_key", tls.private_key, true, leaf);
  }
  if (ca != nullptr && !tls.client_ca.empty()) {
    tls.client_ca = Resolve(r.file(), tls.client_ca);
    CheckPemFile(r, *ca, "server.tls.client_ca", tls.client_ca, false, nullptr);
  }
  config.tls = std::move(tls);
}

// An array of strings at server.KEY, each checked by `problem` (empty: fine).
void ReadStrings(Reader& r, const toml::table& server, std::string_view key,
                 const std::function<std::string(const std::string&)>& problem,
                 std::vector<std::string>* out) {
  const toml::node* node = r.Typed<toml::array>(server, "server", key, "an array of strings");
  if (node == nullptr) return;
  const toml::array& items = *node->as_array();
  for (size_t i = 0; i < items.size(); ++i) {
    std::string name = "server." + std::string(key) + "[" + std::to_string(i) + "]";
    if (!items[i].is_string()) {
      r.Error(items[i].source(), name,
              std::string("must be a string, not ") + TypeName(items[i].type()));
      continue;
    }
    std::string value = items[i].as_string()->get();
    if (std::string why = problem(value); !why.empty()) {
      r.Error(items[i].source(), name, why);
      continue;
    }
    out->push_back(value);
  }
}

// A restore root must name one folder: "/" would let a restore overwrite the proxy itself.
std::string RestoreRootProblem(const std::string& root) {
  if (root.empty() || root.front() != '/') {
    return "\"" + root + "\" must be an absolute path, e.g. \"/restore\"";
  }
  if (root.find_first_not_of('/') == std::string::npos) {
    return "\"/\" would allow restores over the whole proxy; name a folder for them";
  }
  return "";
}

std::string NbdTargetProblem(const std::string& prefix) {
  for (std::string_view scheme : {"nbd://", "nbds://", "nbd+unix://"}) {
    if (prefix.starts_with(scheme) && prefix.size() > scheme.size()) return "";
  }
  return "\"" + prefix + "\" is not an NBD URI prefix (nbd://HOST:PORT/, nbds://..., " +
         "nbd+unix:///EXPORT?socket=PATH)";
}

void ReadServer(Reader& r, const toml::table& server, DaemonConfig& config) {
  r.CheckKeys(server, "server",
              {"unix_socket", "listen", "allow_wildcard", "audit_log", "state_dir", "tls",
               "restore_roots", "restore_nbd_targets"});
  ReadStrings(r, server, "restore_roots", RestoreRootProblem, &config.restore_roots);
  ReadStrings(r, server, "restore_nbd_targets", NbdTargetProblem, &config.restore_nbd_targets);
  r.String(server, "server", "unix_socket", &config.unix_socket);
  r.String(server, "server", "audit_log", &config.audit_log);
  r.String(server, "server", "state_dir", &config.state_dir);
  r.Bool(server, "server", "allow_wildcard", &config.allow_wildcard);
  if (config.unix_socket.empty() || config.unix_socket.front() != '/') {
    r.Error(server.get("unix_socket")->source(), "server.unix_socket",
            "must be an absolute path, e.g. \"/run/offhostd/offhostd.sock\"");
  } else if (config.unix_socket.size() >= sizeof(sockaddr_un::sun_path)) {
    r.Error(server.get("unix_socket")->source(), "server.unix_socket",
            "is " + std::to_string(config.unix_socket.size()) +
                " bytes long; a unix socket's path "
                "holds at most " +
                std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                ": choose a shorter one, e.g. \"/run/offhostd/offhostd.sock\"");
  }
  ReadListen(r, server, config);
  CheckWildcards(r, server, config);
  const toml::node* tls = r.Typed<toml::table>(server, "server", "tls", "a table ([server.tls])");
  if (tls != nullptr) ReadTls(r, *tls->as_table(), config);
  if (!config.listen.empty() && !config.tls) {
    r.Error(server.get("listen")->source(), "server.listen",
            "TCP listeners are TLS only and [server.tls] is missing; add [server.tls] with "
            "certificate and private_key, or remove listen to serve the unix socket only");
  }
}

std::optional<grpcapi::Role> ParseRole(std::string_view text) {
  if (text == "read-only") return grpcapi::Role::kReadOnly;
  if (text == "operator") return grpcapi::Role::kOperator;
  if (text == "admin") return grpcapi::Role::kAdmin;
  return std::nullopt;
}

bool ParseSha256Hex(std::string_view hex, std::array<uint8_t, 32>* out) {
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    auto [end, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, (*out)[i], 16);
    if (ec != std::errc() || end != hex.data() + 2 * i + 2) return false;
  }
  return true;
}

// Calls `each(table, prefix)` for every table of the array of tables at `key`.
template <typename Fn>
void ForEachTable(Reader& r, const toml::table& root, std::string_view key, Fn each) {
  const toml::node* node = r.Typed<toml::array>(root, "", key, "an array of tables");
  if (node == nullptr) return;
  const toml::array& items = *node->as_array();
  for (size_t i = 0; i < items.size(); ++i) {
    std::string prefix = std::string(key) + "[" + std::to_string(i) + "]";
    if (!items[i].is_table()) {
      r.Error(items[i].source(), prefix,
              "must be a table; write [[" + std::string(key) + "]] sections");
      continue;
    }
    each(*items[i].as_table(), prefix);
  }
}

void CheckUniqueName(Reader& r, std::set<std::string>& seen, const toml::table& table,
                     const std::string& prefix, const std::string& name, const char* what) {
  if (!seen.insert(name).second) {
    r.Error(table.get("name")->source(), prefix + ".name",
            std::string("another ") + what + " is already named \"" + name +
                "\"; names must be unique");
  }
}

void ReadTokens(Reader& r, const toml::table& root, DaemonConfig& config) {
  std::set<std::string> names;
  ForEachTable(r, root, "token", [&](const toml::table& t, const std::string& prefix) {
    r.CheckKeys(t, prefix, {"name", "sha256", "role"});
    TokenConfig token;
    std::string hex, role;
    bool ok = r.RequiredString(t, prefix, "name", &token.name) != nullptr;
    if (ok) CheckUniqueName(r, names, t, prefix, token.name, "token");
    if (const toml::node* n = r.RequiredString(t, prefix, "sha256", &hex)) {
      if (!ParseSha256Hex(hex, &token.sha256)) {
        r.Error(n->source(), prefix + ".sha256",
                "must be 64 hex digits, the SHA-256 of the token; make it with "
                "`offhostd hash-token` (it reads the token on stdin)");
        ok = false;
      }
    } else {
      ok = false;
    }
    if (const toml::node* n = r.RequiredString(t, prefix, "role", &role)) {
      std::optional<grpcapi::Role> parsed = ParseRole(role);
      if (!parsed) {
        r.Error(n->source(), prefix + ".role",
                "\"" + role + "\" is not a role; use read-only, operator or admin");
        ok = false;
      } else {
        token.role = *parsed;
      }
    } else {
      ok = false;
    }
    if (ok) config.tokens.push_back(token);
  });
}

void ReadDatastores(Reader& r, const toml::table& root, DaemonConfig& config) {
  std::set<std::string> names;
  ForEachTable(r, root, "datastore", [&](const toml::table& t, const std::string& prefix) {
    r.CheckKeys(t, prefix, {"name", "path", "description"});
    grpcapi::DatastoreConfig ds;
    r.String(t, prefix, "description", &ds.description);
    bool ok = r.RequiredString(t, prefix, "name", &ds.name) != nullptr;
    if (ok) CheckUniqueName(r, names, t, prefix, ds.name, "datastore");
    if (const toml::node* n = r.RequiredString(t, prefix, "path", &ds.path)) {
      if (ds.path.front() != '/') {
        r.Error(n->source(), prefix + ".path", "must be an absolute path");
        ok = false;
      }
    } else {
      ok = false;
    }
    if (ok) config.datastores.push_back(ds);
  });
}

// Why the secret file at `path` may not be used, or "" when it may: it must be a regular file
// of this user (the daemon's) or root that no one else may read or write, so a secret is not
// readable by the users of the proxy.
std::string SecretFileProblem(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return "cannot read " + path + ": " + std::strerror(errno) + "; fix the path";
  }
  if (!S_ISREG(st.st_mode)) return path + " is not a regular file";
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return path + " belongs to uid " + std::to_string(st.st_uid) +
           "; it must belong to offhostd's user or root (chown)";
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return path + " has mode " + mode + ": other users may read or change the secret; chmod 600 " +
           path;
  }
  return "";
}

// Returns the names of every [[credential]], loaded or not, so that a host naming one that
// failed is not told that it does not exist.
std::set<std::string> ReadCredentials(Reader& r, const toml::table& root, DaemonConfig& config) {
  std::set<std::string> names;
  ForEachTable(r, root, "credential", [&](const toml::table& t, const std::string& prefix) {
    r.CheckKeys(t, prefix, {"name", "kind", "user", "secret_file", "description"});
    CredentialConfig c;
    r.String(t, prefix, "description", &c.description);
    bool ok = r.RequiredString(t, prefix, "name", &c.name) != nullptr;
    if (ok) CheckUniqueName(r, names, t, prefix, c.name, "credential");
    if (const toml::node* n = r.RequiredString(t, prefix, "kind", &c.kind)) {
      if (c.kind != "chap") {
        r.Error(n->source(), prefix + ".kind",
                "\"" + c.kind + "\" is not a kind offhostd can use yet; use chap (iSCSI CHAP)");
        ok = false;
      }
    } else {
      ok = false;
    }
    ok = r.RequiredString(t, prefix, "user", &c.user) != nullptr && ok;
    if (const toml::node* n = r.RequiredString(t, prefix, "secret_file", &c.secret_file)) {
      c.secret_file = Resolve(r.file(), c.secret_file);
      std::string problem = SecretFileProblem(c.secret_file);
      Result<std::string> text =
          problem.empty() ? ReadFileText(c.secret_file) : Result<std::string>(Status::OK());
      if (problem.empty() && !text.ok()) problem = text.status().message();
      if (problem.empty()) {
        c.secret = *text;
        while (!c.secret.empty() && (c.secret.back() == '\n' || c.secret.back() == '\r')) {
          c.secret.pop_back();
        }
        if (c.secret.empty()) problem = c.secret_file + " is empty; write the secret into it";
      }
      if (!problem.empty()) {
        // The message names the file, never its content.
        r.Error(n->source(), prefix + ".secret_file", problem);
        ok = false;
      }
    } else {
      ok = false;
    }
    if (ok) config.credentials.push_back(std::move(c));
  });
  return names;
}

const CredentialConfig* FindCredential(const DaemonConfig& config, const std::string& name) {
  for (const auto& c : config.credentials) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// `credential = "NAME"` of a host: its user and secret become the driver's settings.
void ApplyCredential(Reader& r, const DaemonConfig& config, const std::set<std::string>& declared,
                     const toml::table& t, const std::string& prefix, grpcapi::HostConfig& host) {
  std::string name;
  const toml::node* n = r.String(t, prefix, "credential", &name);
  if (n == nullptr) return;
  const CredentialConfig* c = FindCredential(config, name);
  if (c == nullptr && declared.contains(name)) return;  // its own error was reported
  if (c == nullptr) {
    r.Error(n->source(), prefix + ".credential",
            "no [[credential]] is named \"" + name + "\"; add it or fix the name");
    return;
  }
  if (host.driver != "iscsi") {
    r.Error(n->source(), prefix + ".credential",
            "credential " + name + " is of kind " + c->kind +
                ", which the iscsi driver uses; host " + host.name + " uses the " + host.driver +
                " driver");
    return;
  }
  if (host.settings.contains("chap-user") || host.settings.contains("chap-secret")) {
    r.Error(n->source(), prefix + ".credential",
            "the host also sets chap-user or chap-secret in its settings; keep the credential "
            "and remove those settings");
    return;
  }
  host.settings["chap-user"] = c->user;
  host.settings["chap-secret"] = c->secret;
  host.credential = name;
}

const char* const kDrivers[] = {"nbd", "iscsi", "image", "libvirt", "qemu"};

// A scalar setting as the drivers take it: text.
std::optional<std::string> SettingText(const toml::node& node) {
  if (node.is_string()) return node.as_string()->get();
  if (node.is_integer()) return std::to_string(node.as_integer()->get());
  if (node.is_boolean()) return node.as_boolean()->get() ? "true" : "false";
  return std::nullopt;
}

// `settings = { connect = "...", disks = { vda = "nbd+unix:///?socket=..." } }`: scalars
// keep their key; `disks` entries become the drivers' "disk.NAME".
void ReadSettings(Reader& r, const toml::table& t, const std::string& prefix,
                  grpcapi::DriverSettingsMap* out) {
  const toml::node* node = r.Typed<toml::table>(t, prefix, "settings", "a table");
  if (node == nullptr) return;
  std::string where = prefix + ".settings";
  for (auto&& [key, value] : *node->as_table()) {
    std::string name(key.str());
    if (name == "disks" && value.is_table()) {
      for (auto&& [disk, source] : *value.as_table()) {
        std::optional<std::string> text = SettingText(source);
        if (!text) {
          r.Error(source.source(), where + ".disks." + std::string(disk.str()),
                  "must be a string, the disk's source (e.g. \"nbd+unix:///?socket=/run/vda\")");
          continue;
        }
        (*out)["disk." + std::string(disk.str())] = *text;
      }
      continue;
    }
    std::optional<std::string> text = SettingText(value);
    if (!text) {
      r.Error(value.source(), Child(where, name),
              std::string("must be a string, a number or a boolean, not ") +
                  TypeName(value.type()) + " (only `disks` is a table)");
      continue;
    }
    (*out)[name] = *text;
  }
}

bool HasDatastore(const DaemonConfig& config, const std::string& name) {
  for (const auto& ds : config.datastores) {
    if (ds.name == name) return true;
  }
  return false;
}

// A datastore reference: it must be a configured [[datastore]].
void CheckDatastoreRef(Reader& r, const DaemonConfig& config, const toml::table& t,
                       const std::string& prefix, const std::string& name) {
  if (name.empty() || HasDatastore(config, name)) return;
  r.Error(t.get("datastore")->source(), prefix + ".datastore",
          "no [[datastore]] is named \"" + name + "\"; add it or fix the name");
}

void ReadHosts(Reader& r, const toml::table& root, DaemonConfig& config,
               const std::set<std::string>& credentials) {
  std::set<std::string> names;
  ForEachTable(r, root, "host", [&](const toml::table& t, const std::string& prefix) {
    r.CheckKeys(t, prefix,
                {"name", "driver", "settings", "ad_hoc_sources_allowed", "datastore", "description",
                 "credential", "max_concurrent", "bandwidth"});
    grpcapi::HostConfig host;
    bool ok = r.RequiredString(t, prefix, "name", &host.name) != nullptr;
    if (ok) CheckUniqueName(r, names, t, prefix, host.name, "host");
    if (const toml::node* n = r.RequiredString(t, prefix, "driver", &host.driver)) {
      if (std::find(std::begin(kDrivers), std::end(kDrivers), host.driver) == std::end(kDrivers)) {
        r.Error(n->source(), prefix + ".driver",
                "\"" + host.driver + "\" is not a driver; use nbd, iscsi, image, libvirt or qemu");
        ok = false;
      }
    } else {
      ok = false;
    }
    r.Bool(t, prefix, "ad_hoc_sources_allowed", &host.ad_hoc_sources_allowed);
    r.String(t, prefix, "datastore", &host.datastore);
    r.String(t, prefix, "description", &host.description);
    CheckDatastoreRef(r, config, t, prefix, host.datastore);
    ReadSettings(r, t, prefix, &host.settings);
    r.Int(t, prefix, "max_concurrent", 0, 1000, &host.max_concurrent);
    r.Parsed(
        t, prefix, "bandwidth", [](const std::string& s) { return proxy::ParseBandwidth(s); },
        &host.bandwidth);
    if (ok) ApplyCredential(r, config, credentials, t, prefix, host);
    if (ok) config.hosts.push_back(host);
  });
}

void ReadScheduler(Reader& r, const toml::table& root, DaemonConfig& config) {
  const toml::node* node = r.Typed<toml::table>(root, "", "scheduler", "a table ([scheduler])");
  if (node == nullptr) return;
  const toml::table& t = *node->as_table();
  r.CheckKeys(t, "scheduler", {"max_concurrent", "max_per_host", "max_per_datastore"});
  r.Int(t, "scheduler", "max_concurrent", 0, 1000, &config.slots.total);
  r.Int(t, "scheduler", "max_per_host", 0, 1000, &config.slots.per_host_default);
  r.Int(t, "scheduler", "max_per_datastore", 0, 1000, &config.slots.per_datastore);
}

// retention = { keep_last = 7, keep_daily = 14, ... } (docs/retention.md).
void ReadRetention(Reader& r, const toml::table& t, const std::string& prefix,
                   proxy::VmPolicy* policy) {
  const toml::node* node = r.Typed<toml::table>(t, prefix, "retention", "a table");
  if (node == nullptr) return;
  const toml::table& rt = *node->as_table();
  std::string where = prefix + ".retention";
  r.CheckKeys(
      rt, where,
      {"keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"});
  storage::RetentionPolicy p;
  constexpr int kMax = 1000000;
  r.Int(rt, where, "keep_last", 0, kMax, &p.keep_last);
  r.Int(rt, where, "keep_hourly", 0, kMax, &p.keep_hourly);
  r.Int(rt, where, "keep_daily", 0, kMax, &p.keep_daily);
  r.Int(rt, where, "keep_weekly", 0, kMax, &p.keep_weekly);
  r.Int(rt, where, "keep_monthly", 0, kMax, &p.keep_monthly);
  r.Int(rt, where, "keep_yearly", 0, kMax, &p.keep_yearly);
  if (Status st = storage::ValidateRetentionPolicy(p); !st.ok()) {
    r.Error(node->source(), where,
            "keeps nothing; set at least one of keep_last, keep_hourly, keep_daily, "
            "keep_weekly, keep_monthly, keep_yearly");
    return;
  }
  policy->retention = p;
}

// The scheduling keys of a [[vm]] (docs/scheduler.md).
void ReadVmPolicy(Reader& r, const toml::table& t, const std::string& prefix,
                  proxy::VmPolicy* policy) {
  proxy::CalendarEvent event;
  if (r.Parsed(t, prefix, "schedule", proxy::ParseCalendarEvent, &event)) policy->schedule = event;
  std::chrono::seconds every{0};
  if (r.Parsed(t, prefix, "full_every", proxy::ParseDuration, &every)) {
    if (every.count() % 86400 != 0 || every.count() == 0) {
      r.Error(t.get("full_every")->source(), prefix + ".full_every",
              "must be a whole number of days, e.g. \"7d\"");
    } else {
      policy->full_every_days = static_cast<int>(every.count() / 86400);
    }
  }
  proxy::BackupWindow window;
  if (r.Parsed(t, prefix, "window", proxy::ParseBackupWindow, &window)) policy->window = window;
  r.Int(t, prefix, "retries", 0, 100, &policy->retries);
  std::chrono::seconds backoff{0};
  if (r.Parsed(t, prefix, "retry_backoff", proxy::ParseDuration, &backoff)) {
    if (backoff.count() == 0) {
      r.Error(t.get("retry_backoff")->source(), prefix + ".retry_backoff",
              "must be more than 0, e.g. \"1m\"");
    } else {
      policy->retry_backoff = backoff;
    }
  }
  r.Parsed(
      t, prefix, "bandwidth", [](const std::string& s) { return proxy::ParseBandwidth(s); },
      &policy->bandwidth);
  ReadRetention(r, t, prefix, policy);
  bool scheduled_only = policy->full_every_days > 0 || policy->window || policy->retries > 0;
  if (scheduled_only && !t.contains("schedule")) {  // a wrong one was reported above
    r.Error(t.source(), prefix + ".schedule",
            "missing: full_every, window and retries apply to scheduled backups; add a "
            "schedule (e.g. \"daily 22:00\")");
  }
}

const grpcapi::HostConfig* FindHost(const DaemonConfig& config, const std::string& name) {
  for (const auto& host : config.hosts) {
    if (host.name == name) return &host;
  }
  return nullptr;
}

void ReadVms(Reader& r, const toml::table& root, DaemonConfig& config) {
  std::set<std::string> names;
  ForEachTable(r, root, "vm", [&](const toml::table& t, const std::string& prefix) {
    r.CheckKeys(t, prefix,
                {"name", "host", "datastore", "settings", "schedule", "full_every", "window",
                 "retries", "retry_backoff", "bandwidth", "retention"});
    grpcapi::VmConfig vm;
    // The name is the backup group's vm_id in every datastore: unique across hosts.
    bool ok = r.RequiredString(t, prefix, "name", &vm.name) != nullptr;
    if (ok) CheckUniqueName(r, names, t, prefix, vm.name, "vm");
    r.String(t, prefix, "datastore", &vm.datastore);
    if (const toml::node* n = r.RequiredString(t, prefix, "host", &vm.host)) {
      const grpcapi::HostConfig* host = FindHost(config, vm.host);
      if (host == nullptr) {
        r.Error(n->source(), prefix + ".host",
                "no [[host]] is named \"" + vm.host + "\"; add it or fix the name");
        ok = false;
      } else if (vm.datastore.empty() && host->datastore.empty() && config.datastores.size() != 1) {
        r.Error(t.source(), prefix + ".datastore",
                "missing, and neither its host nor a single [[datastore]] gives a default; "
                "name the datastore its backups go to");
      }
    } else {
      ok = false;
    }
    CheckDatastoreRef(r, config, t, prefix, vm.datastore);
    ReadSettings(r, t, prefix, &vm.settings);
    ReadVmPolicy(r, t, prefix, &vm.policy);
    if (ok) config.vms.push_back(vm);
  });
}

}  // namespace

bool IsWildcardAddress(std::string_view address) {
  std::optional<std::string_view> host = HostOf(address);
  if (!host) return false;
  return host->empty() || *host == "*" || *host == "0.0.0.0" || *host == "::" ||
         *host == "0:0:0:0:0:0:0:0";
}

Result<DaemonConfig> ParseConfig(std::string_view text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(path + ":" + std::to_string(e.source().begin.line) + ":" +
                                   std::to_string(e.source().begin.column) +
                                   ": not valid TOML: " + std::string(e.description()));
  }
  Reader r(path);
  DaemonConfig config;
  config.file = path;
  r.CheckKeys(root, "", {"server", "scheduler", "token", "datastore", "credential", "host", "vm"});
  const toml::node* server = r.Typed<toml::table>(root, "", "server", "a table ([server])");
  if (server != nullptr) ReadServer(r, *server->as_table(), config);
  ReadScheduler(r, root, config);
  ReadTokens(r, root, config);
  ReadDatastores(r, root, config);
  std::set<std::string> credentials = ReadCredentials(r, root, config);  // before the hosts
  ReadHosts(r, root, config, credentials);  // after the datastores, before the VMs naming them
  ReadVms(r, root, config);
  for (const auto& host : config.hosts) {
    if (host.max_concurrent >= 0) config.slots.per_host[host.name] = host.max_concurrent;
  }
  if (r.errors().empty()) return config;
  std::string message;
  for (const std::string& e : r.errors()) message += (message.empty() ? "" : "\n") + e;
  return Status::InvalidArgument(message);
}

Result<DaemonConfig> LoadConfig(const std::string& path) {
  Result<std::string> text = ReadFileText(path);
  if (!text.ok()) {
    return Status(text.status().code(), "configuration: " + text.status().message());
  }
  return ParseConfig(*text, path);
}

}  // namespace offhost::daemon
