// offhostd's configuration (proxy/daemon/config.h): every problem is reported with the file,
// the line and the key, and a good file gives the values it says.
#include "config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "authorizer.h"
#include "test_util.h"

namespace offhost::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kHash[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

// The error for `text`, read as if from "/etc/offhostd/offhostd.toml".
std::string ErrorOf(const std::string& text) {
  Result<DaemonConfig> config = ParseConfig(text, "/etc/offhostd/offhostd.toml");
  EXPECT_FALSE(config.ok()) << "accepted:\n" << text;
  return config.ok() ? "" : config.status().message();
}

TEST(DaemonConfigTest, GoodConfigParses) {
  Result<DaemonConfig> config = ParseConfig(std::string(R"(
[server]
unix_socket = "/tmp/x/offhostd.sock"
audit_log = "/tmp/x/audit.log"

[[token]]
name = "veeam"
sha256 = ")") + kHash + R"("
role = "operator"

[[datastore]]
name = "main"
path = "/backup/ds"
description = "the main one"
)",
                                            "/etc/offhostd/offhostd.toml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->unix_socket, "/tmp/x/offhostd.sock");
  EXPECT_TRUE(config->listen.empty());
  ASSERT_EQ(config->tokens.size(), 1u);
  EXPECT_EQ(config->tokens[0].name, "veeam");
  EXPECT_EQ(config->tokens[0].role, grpcapi::Role::kOperator);
  EXPECT_EQ(config->tokens[0].sha256[0], 0x9f);
  ASSERT_EQ(config->datastores.size(), 1u);
  EXPECT_EQ(config->datastores[0].path, "/backup/ds");
  EXPECT_EQ(config->datastores[0].description, "the main one");
}

TEST(DaemonConfigTest, DefaultsWhenEmpty) {
  Result<DaemonConfig> config = ParseConfig("", "/etc/offhostd/offhostd.toml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->unix_socket, "/run/offhostd/offhostd.sock");
  EXPECT_EQ(config->audit_log, "/var/log/offhostd/audit.log");
  EXPECT_FALSE(config->allow_wildcard);
}

TEST(DaemonConfigTest, RestoreTargetsParse) {
  Result<DaemonConfig> config = ParseConfig(
      "[server]\nrestore_roots = [\"/restore\", \"/srv/vm-restores\"]\n"
      "restore_nbd_targets = [\"nbd://10.20.0.9:10809/\"]\n",
      "/etc/offhostd/offhostd.toml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->restore_roots, (std::vector<std::string>{"/restore", "/srv/vm-restores"}));
  EXPECT_EQ(config->restore_nbd_targets, (std::vector<std::string>{"nbd://10.20.0.9:10809/"}));
  // None by default: restores to the proxy's file system are refused.
  EXPECT_TRUE(ParseConfig("", "/etc/offhostd/offhostd.toml")->restore_roots.empty());
}

TEST(DaemonConfigTest, BadRestoreTargetsNameLineAndKey) {
  EXPECT_THAT(ErrorOf("[server]\nrestore_roots = [\"/restore\", \"restore\"]\n"),
              HasSubstr(":2: server.restore_roots[1]: \"restore\" must be an absolute path"));
  EXPECT_THAT(ErrorOf("[server]\n\nrestore_roots = [\"/\"]\n"),
              HasSubstr(":3: server.restore_roots[0]: \"/\" would allow restores over the whole"));
  EXPECT_THAT(ErrorOf("[server]\nrestore_roots = \"/restore\"\n"),
              HasSubstr(":2: server.restore_roots: must be an array of strings, not a string"));
  EXPECT_THAT(ErrorOf("[server]\nrestore_nbd_targets = [\"http://x/\"]\n"),
              HasSubstr(":2: server.restore_nbd_targets[0]: \"http://x/\" is not an NBD URI"));
}

TEST(DaemonConfigTest, UnixSocketPathTooLongForTheKernelIsNamed) {
  const std::string path = "/run/" + std::string(120, 'x') + ".sock";
  EXPECT_THAT(ErrorOf("[server]\nunix_socket = \"" + path + "\"\n"),
              HasSubstr(":2: server.unix_socket: is 130 bytes long; a unix socket's path holds "
                        "at most 107"));
}

TEST(DaemonConfigTest, HashTokenIsSha256Hex) { EXPECT_EQ(HashToken("test"), kHash); }

TEST(DaemonConfigTest, SyntaxErrorNamesLine) {
  EXPECT_THAT(ErrorOf("[server]\nlisten = [\n"), HasSubstr("/etc/offhostd/offhostd.toml:"));
  EXPECT_THAT(ErrorOf("[server]\n\nunix_socket = \n"), HasSubstr("offhostd.toml:3:"));
}

TEST(DaemonConfigTest, UnknownKeyNamesLineAndKey) {
  std::string error = ErrorOf("[server]\nunix_socket = \"/run/a.sock\"\nlsten = []\n");
  EXPECT_THAT(error, HasSubstr("offhostd.toml:3: server.lsten: unknown key in [server]"));
  EXPECT_THAT(error, HasSubstr("listen"));  // the known keys are listed
  EXPECT_THAT(ErrorOf("\n[servre]\n"), HasSubstr(":2: servre: unknown key at the top level"));
}

TEST(DaemonConfigTest, WrongTypeNamesLineAndKey) {
  EXPECT_THAT(ErrorOf("[server]\nallow_wildcard = \"yes\"\n"),
              HasSubstr(":2: server.allow_wildcard: must be true or false, not a string"));
  EXPECT_THAT(ErrorOf("[server]\nlisten = \"127.0.0.1:1\"\n"),
              HasSubstr(":2: server.listen: must be an array of strings, not a string"));
  EXPECT_THAT(ErrorOf("[server]\nlisten = [8740]\n"),
              HasSubstr(":2: server.listen[0]: must be a string, not an integer"));
}

TEST(DaemonConfigTest, BadRoleNamesLineAndKey) {
  std::string error = ErrorOf(std::string("[[token]]\nname = \"a\"\nsha256 = \"") + kHash +
                              "\"\nrole = \"root\"\n");
  EXPECT_THAT(error, HasSubstr(":4: token[0].role: \"root\" is not a role"));
  EXPECT_THAT(error, HasSubstr("read-only, operator or admin"));
}

TEST(DaemonConfigTest, BadHashNamesLineAndKey) {
  std::string error = ErrorOf("[[token]]\nname = \"a\"\nsha256 = \"s3cret\"\nrole = \"admin\"\n");
  EXPECT_THAT(error, HasSubstr(":3: token[0].sha256: must be 64 hex digits"));
  EXPECT_THAT(error, HasSubstr("offhostd hash-token"));
}

TEST(DaemonConfigTest, MissingKeyNamesTable) {
  EXPECT_THAT(ErrorOf("[[token]]\nname = \"a\"\nrole = \"admin\"\n"),
              HasSubstr("token[0].sha256: missing"));
}

TEST(DaemonConfigTest, DuplicateNamesNameLineAndKey) {
  std::string token =
      std::string("[[token]]\nname = \"a\"\nsha256 = \"") + kHash + "\"\nrole = \"admin\"\n";
  EXPECT_THAT(ErrorOf(token + token),
              HasSubstr(":6: token[1].name: another token is already named \"a\""));
  std::string ds = "[[datastore]]\nname = \"main\"\npath = \"/ds\"\n";
  EXPECT_THAT(ErrorOf(ds + ds),
              HasSubstr(":5: datastore[1].name: another datastore is already named \"main\""));
}

TEST(DaemonConfigTest, WildcardListenRefusedUnlessAllowed) {
  std::string text = "[server]\nlisten = [\n  \"0.0.0.0:8740\",\n  \"[::]:8740\",\n]\n";
  std::string error = ErrorOf(text);
  EXPECT_THAT(error, HasSubstr(":3: server.listen[0]: \"0.0.0.0:8740\" listens on every network"));
  EXPECT_THAT(error, HasSubstr(":4: server.listen[1]: \"[::]:8740\""));
  EXPECT_THAT(error, HasSubstr("server.allow_wildcard = true"));
  // Allowed, the remaining problem is the missing TLS.
  EXPECT_THAT(ErrorOf("[server]\nallow_wildcard = true\n" + text.substr(9)),
              Not(HasSubstr("every network")));
}

TEST(DaemonConfigTest, WildcardDetection) {
  EXPECT_TRUE(IsWildcardAddress("0.0.0.0:1"));
  EXPECT_TRUE(IsWildcardAddress("[::]:1"));
  EXPECT_TRUE(IsWildcardAddress(":1"));
  EXPECT_FALSE(IsWildcardAddress("10.20.0.4:8740"));
  EXPECT_FALSE(IsWildcardAddress("[fd00::4]:8740"));
}

TEST(DaemonConfigTest, MalformedListenAddress) {
  EXPECT_THAT(ErrorOf("[server]\nlisten = [\"10.20.0.4\"]\n"),
              HasSubstr(":2: server.listen[0]: \"10.20.0.4\" is not HOST:PORT"));
}

TEST(DaemonConfigTest, TcpListenerNeedsTls) {
  std::string error = ErrorOf("[server]\nlisten = [\"127.0.0.1:8740\"]\n");
  EXPECT_THAT(error, HasSubstr(":2: server.listen: TCP listeners are TLS only"));
  EXPECT_THAT(error, HasSubstr("[server.tls]"));
}

TEST(DaemonConfigTest, MissingTlsFileNamesLineKeyAndPath) {
  std::string error = ErrorOf(
      "[server]\nlisten = [\"127.0.0.1:8740\"]\n[server.tls]\ncertificate = \"nope.crt\"\n"
      "private_key = \"/nonexistent/server.key\"\n");
  EXPECT_THAT(error, HasSubstr(":4: server.tls.certificate: read /etc/offhostd/nope.crt: No such "
                               "file or directory"));
  EXPECT_THAT(error, HasSubstr(":5: server.tls.private_key: read /nonexistent/server.key"));
}

TEST(DaemonConfigTest, TlsFileThatIsNotPem) {
  testing::TempDir dir;
  std::ofstream(dir / "server.crt") << "not a certificate\n";
  std::ofstream(dir / "server.key") << "not a key\n";
  Result<DaemonConfig> config =
      ParseConfig("[server.tls]\ncertificate = \"server.crt\"\nprivate_key = \"server.key\"\n",
                  dir / "offhostd.toml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr(":2: server.tls.certificate: " + (dir / "server.crt") + ": no PEM"));
}

TEST(DaemonConfigTest, ReportsEveryProblem) {
  std::string error =
      ErrorOf("[server]\nlsten = []\nallow_wildcard = 1\n[[datastore]]\nname = 3\n");
  EXPECT_THAT(error, HasSubstr(":2: server.lsten"));
  EXPECT_THAT(error, HasSubstr(":3: server.allow_wildcard"));
  EXPECT_THAT(error, HasSubstr(":5: datastore[0].name"));
  EXPECT_THAT(error, HasSubstr("datastore[0].path: missing"));
}

TEST(DaemonConfigTest, LoadConfigReportsMissingFile) {
  Result<DaemonConfig> config = LoadConfig("/nonexistent/offhostd.toml");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("/nonexistent/offhostd.toml"));
}

constexpr char kInventory[] = R"(
[[datastore]]
name = "main"
path = "/backup/ds"

[[host]]
name = "kvm1"
driver = "nbd"
ad_hoc_sources_allowed = true
datastore = "main"
description = "rack 4"
settings = { bitmap = "qemu:dirty-bitmap:bm0" }

[[vm]]
name = "web01"
host = "kvm1"
settings = { domain = "web01.example", freeze-timeout = 30, disks = { vda = "nbd+unix:///?socket=/run/vda" } }
)";

TEST(DaemonConfigTest, HostsAndVmsParse) {
  Result<DaemonConfig> config = ParseConfig(kInventory, "/etc/offhostd/offhostd.toml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  ASSERT_EQ(config->hosts.size(), 1u);
  EXPECT_EQ(config->hosts[0].driver, "nbd");
  EXPECT_TRUE(config->hosts[0].ad_hoc_sources_allowed);
  EXPECT_EQ(config->hosts[0].datastore, "main");
  EXPECT_EQ(config->hosts[0].description, "rack 4");
  EXPECT_EQ(config->hosts[0].settings.at("bitmap"), "qemu:dirty-bitmap:bm0");
  ASSERT_EQ(config->vms.size(), 1u);
  EXPECT_EQ(config->vms[0].host, "kvm1");
  EXPECT_EQ(config->vms[0].settings.at("disk.vda"), "nbd+unix:///?socket=/run/vda");
  EXPECT_EQ(config->vms[0].settings.at("domain"), "web01.example");
  EXPECT_EQ(config->vms[0].settings.at("freeze-timeout"), "30");
}

TEST(DaemonConfigTest, InventoryReferencesAreChecked) {
  std::string error = ErrorOf(std::string(kInventory) + R"(
[[host]]
name = "kvm2"
driver = "vmware"
datastore = "nope"

[[vm]]
name = "db01"
host = "kvm9"

[[vm]]
name = "web01"
host = "kvm1"
datastore = "other"
settings = { disks = { vda = [3] }, list = [1] }
)");
  EXPECT_THAT(error, HasSubstr(":21: host[1].driver: \"vmware\" is not a driver"));
  EXPECT_THAT(error, HasSubstr("host[1].datastore: no [[datastore]] is named \"nope\""));
  EXPECT_THAT(error, HasSubstr(":26: vm[1].host: no [[host]] is named \"kvm9\""));
  EXPECT_THAT(error, HasSubstr(":29: vm[2].name: another vm is already named \"web01\""));
  EXPECT_THAT(error, HasSubstr("vm[2].datastore: no [[datastore]] is named \"other\""));
  EXPECT_THAT(error, HasSubstr("vm[2].settings.disks.vda: must be a string"));
  EXPECT_THAT(error, HasSubstr("vm[2].settings.list: must be a string, a number or a boolean"));
}

// A [[credential]] named by an iSCSI host: its user and secret (read from a 0600 file, whose
// path is relative to the configuration's folder) become the host's CHAP settings.
TEST(DaemonConfigTest, CredentialGivesItsHostChapSettings) {
  offhost::testing::TempDir dir;
  { std::ofstream(dir / "san1.secret") << "s3cret-Value\n"; }
  ::chmod((dir / "san1.secret").c_str(), 0600);
  Result<DaemonConfig> config = ParseConfig(R"(
[[datastore]]
name = "main"
path = "/backup/ds"

[[credential]]
name = "san1-chap"
kind = "chap"
user = "proxy1"
secret_file = "san1.secret"
description = "rotated monthly"

[[host]]
name = "san1"
driver = "iscsi"
credential = "san1-chap"
)",
                                            dir / "offhostd.toml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  ASSERT_EQ(config->credentials.size(), 1u);
  EXPECT_EQ(config->credentials[0].user, "proxy1");
  EXPECT_EQ(config->credentials[0].secret_file, dir / "san1.secret");
  EXPECT_EQ(config->credentials[0].secret, "s3cret-Value");
  ASSERT_EQ(config->hosts.size(), 1u);
  EXPECT_EQ(config->hosts[0].credential, "san1-chap");
  EXPECT_EQ(config->hosts[0].settings.at("chap-user"), "proxy1");
  EXPECT_EQ(config->hosts[0].settings.at("chap-secret"), "s3cret-Value");
}

// Every problem names the line and key; a readable secret never appears in a message.
TEST(DaemonConfigTest, CredentialProblemsNameLineKeyAndFile) {
  offhost::testing::TempDir dir;
  { std::ofstream(dir / "open.secret") << "do-not-show-me\n"; }
  ::chmod((dir / "open.secret").c_str(), 0644);
  { std::ofstream(dir / "empty.secret") << "\n"; }
  ::chmod((dir / "empty.secret").c_str(), 0600);
  { std::ofstream(dir / "ok.secret") << "also-secret\n"; }
  ::chmod((dir / "ok.secret").c_str(), 0600);
  Result<DaemonConfig> config = ParseConfig(R"(
[[credential]]
name = "open"
kind = "chap"
user = "u"
secret_file = "open.secret"

[[credential]]
name = "gone"
kind = "chap"
user = "u"
secret_file = "/nonexistent/x.secret"

[[credential]]
name = "empty"
kind = "chap"
user = "u"
secret_file = "empty.secret"

[[credential]]
name = "ok"
kind = "kerberos"
user = "u"
secret_file = "ok.secret"
password = "inline"

[[credential]]
name = "fine"
kind = "chap"
user = "u"
secret_file = "ok.secret"

[[host]]
name = "kvm1"
driver = "nbd"
credential = "fine"

[[host]]
name = "san1"
driver = "iscsi"
credential = "nope"

[[host]]
name = "san2"
driver = "iscsi"
credential = "fine"
settings = { chap-user = "x" }
)",
                                            dir / "offhostd.toml");
  ASSERT_FALSE(config.ok());
  std::string error = config.status().message();
  EXPECT_THAT(error, HasSubstr(":6: credential[0].secret_file: " + (dir / "open.secret") +
                               " has mode 0644: other users may read or change the secret; "
                               "chmod 600"));
  EXPECT_THAT(error,
              HasSubstr(":12: credential[1].secret_file: cannot read /nonexistent/x.secret"));
  EXPECT_THAT(error,
              HasSubstr(":18: credential[2].secret_file: " + (dir / "empty.secret") + " is empty"));
  EXPECT_THAT(error, HasSubstr(":22: credential[3].kind: \"kerberos\" is not a kind"));
  EXPECT_THAT(error, HasSubstr("credential[3].password: unknown key"));
  EXPECT_THAT(error, HasSubstr(":36: host[0].credential: credential fine is of kind chap"));
  EXPECT_THAT(error, HasSubstr(":41: host[1].credential: no [[credential]] is named \"nope\""));
  EXPECT_THAT(error, HasSubstr(":46: host[2].credential: the host also sets chap-user"));
  EXPECT_THAT(error, Not(HasSubstr("do-not-show-me")));
  EXPECT_THAT(error, Not(HasSubstr("also-secret")));
}

}  // namespace
}  // namespace offhost::daemon

namespace offhost::daemon {
namespace {

constexpr char kSchedInventory[] = R"([[datastore]]
name = "main"
path = "/backup/ds"

[[host]]
name = "kvm1"
driver = "libvirt"
)";

TEST(DaemonConfigTest, SchedulesAndPoliciesParse) {
  Result<DaemonConfig> config = ParseConfig(std::string(R"([scheduler]
max_concurrent = 8
max_per_datastore = 4
)") + kSchedInventory + R"(max_concurrent = 3
bandwidth = "100M"

[[vm]]
name = "web01"
host = "kvm1"
schedule = "mon..fri 01:30"
full_every = "7d"
window = "22:00-06:00"
retries = 3
retry_backoff = "1m"
bandwidth = "20M"
retention = { keep_last = 3, keep_daily = 14 }
)",
                                            "/etc/offhostd/offhostd.toml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->slots.total, 8);
  EXPECT_EQ(config->slots.per_datastore, 4);
  EXPECT_EQ(config->slots.per_host_default, 2);
  EXPECT_EQ(config->slots.per_host.at("kvm1"), 3);
  EXPECT_EQ(config->hosts[0].bandwidth, 100u << 20);
  const proxy::VmPolicy& p = config->vms[0].policy;
  ASSERT_TRUE(p.schedule.has_value());
  EXPECT_EQ(p.schedule->text, "mon..fri 01:30");
  EXPECT_FALSE(p.schedule->weekdays[5]);
  EXPECT_EQ(p.full_every_days, 7);
  EXPECT_EQ(p.window->start, 22 * 3600);
  EXPECT_EQ(p.retries, 3);
  EXPECT_EQ(p.retry_backoff.count(), 60);
  EXPECT_EQ(p.bandwidth, 20u << 20);
  EXPECT_EQ(p.retention->keep_last, 3);
  EXPECT_EQ(p.retention->keep_daily, 14);
}

TEST(DaemonConfigTest, BadSchedulesNameLineAndKey) {
  std::string e = ErrorOf(std::string(kSchedInventory) + R"(
[[vm]]
name = "web01"
host = "kvm1"
schedule = "mon..fri"
full_every = "36h"
window = "22:00"
retries = -1
bandwidth = "fast"
retention = { keep_last = 0 }
)");
  EXPECT_THAT(e, HasSubstr("/etc/offhostd/offhostd.toml:12: vm[0].schedule: calendar event "
                           "\"mon..fri\": a day list needs a time"));
  EXPECT_THAT(e, HasSubstr(":13: vm[0].full_every: must be a whole number of days"));
  EXPECT_THAT(e, HasSubstr(":14: vm[0].window: \"22:00\" is not a window"));
  EXPECT_THAT(e, HasSubstr(":15: vm[0].retries: -1 is out of range"));
  EXPECT_THAT(e, HasSubstr(":16: vm[0].bandwidth: \"fast\" is not a bandwidth"));
  EXPECT_THAT(e, HasSubstr(":17: vm[0].retention: keeps nothing"));
}

TEST(DaemonConfigTest, PoliciesOfScheduledRunsNeedASchedule) {
  std::string e = ErrorOf(std::string(kSchedInventory) + R"(
[[vm]]
name = "web01"
host = "kvm1"
retries = 2
)");
  EXPECT_THAT(e, HasSubstr("vm[0].schedule: missing: full_every, window and retries apply to "
                           "scheduled backups"));
  // A schedule that is there but wrong is reported as wrong, not also as missing.
  e = ErrorOf(std::string(kSchedInventory) + R"(
[[vm]]
name = "web01"
host = "kvm1"
schedule = "Mon-Fri 01:30"
retries = 2
)");
  EXPECT_THAT(e, HasSubstr("vm[0].schedule: calendar event \"Mon-Fri 01:30\""));
  EXPECT_THAT(e, Not(HasSubstr("missing")));
}

}  // namespace
}  // namespace offhost::daemon
