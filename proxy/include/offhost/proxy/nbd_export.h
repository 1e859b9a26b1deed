// Instant recovery: one disk of a stored snapshot served over NBD, so a hypervisor can boot the
// VM from its backup while the real restore runs (docs/instant-recovery.md). The server is
// nbdkit with our plugin (proxy/nbdkit-plugin/), read-only, or behind nbdkit's cow filter for
// a throwaway write overlay; the datastore is only ever read.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::proxy {

struct ExportOptions {
  std::string datastore;  // datastore directory (made absolute by Start)
  std::string vm;
  std::string snapshot;  // id or "latest"
  std::string disk;      // may be empty when the snapshot has one disk
  // Exactly one of: a unix socket path, or HOST:PORT on a backup-network address (never a
  // wildcard such as 0.0.0.0 or [::]).
  std::string socket;
  std::string listen;
  bool overlay = false;  // writes allowed, kept in a temporary file and dropped at the end
  uint64_t cache_bytes = 256u << 20;  // decoded chunks kept in memory
  // nbdkit writes its pid here once it serves; empty = a private temporary file.
  std::string pid_file;
  // nbdkit's messages go here; empty = this process's stderr.
  std::string log_file;
  // false: nbdkit runs in the foreground as a child, and ends when the thread that started it
  // ends (nbdkit -f sets prctl PDEATHSIG): right for a CLI's main thread, even on kill -9.
  // true: nbdkit forks into the background on its own and outlives this process (and a
  // server's worker thread); Start waits for the fork and reads the pid file.
  bool detach = false;
};

// What is served: the resolved snapshot id and the client's URI.
struct ExportInfo {
  std::string id;  // ExportRegistry's name for it
  std::string datastore;
  std::string vm, snapshot, disk;
  uint64_t size = 0;
  std::string uri;  // nbd+unix:///?socket=S or nbd://HOST:PORT
  bool overlay = false;
  pid_t pid = 0;
};

// A running nbdkit serving one backup disk. Destroying it stops the server unless detached.
class NbdExport {
 public:
  // Checks the snapshot and disk, starts nbdkit and returns once it accepts connections.
  static Result<std::unique_ptr<NbdExport>> Start(const ExportOptions& options);
  ~NbdExport();

  const ExportInfo& info() const { return info_; }
  // Whether nbdkit is still running (reaps it when it has ended).
  bool Running();
  // Returns when nbdkit ends or `stop` becomes true (then stops it).
  Status Wait(const std::atomic<bool>& stop);
  // SIGTERM, then waits for it to end (SIGKILL after 10 s).
  Status Stop();
  // Leaves nbdkit running after this object is gone (--background).
  void Detach() { detached_ = true; }

 private:
  friend class ExportRegistry;
  NbdExport() = default;
  ExportInfo info_;
  std::string private_dir_;  // temporary pid file, removed at the end
  bool daemonized_ = false;  // not our child: watched through /proc, not waitpid
  bool detached_ = false;
  bool ended_ = false;
};

// The exports a server (offhostd) runs: unix sockets, pid files and logs in one folder of its
// own. Exports a killed server left behind are stopped when the next one opens the folder.
// Thread-safe.
class ExportRegistry {
 public:
  // `dir` is made if missing; leftovers in it are stopped and removed.
  static Result<std::unique_ptr<ExportRegistry>> Open(const std::string& dir);
  ~ExportRegistry();  // stops every export

  // Starts an export; options.socket empty and options.listen empty = a unix socket in the
  // registry's folder. The pid and log files are the registry's.
  Result<ExportInfo> Start(ExportOptions options);
  Status Stop(const std::string& id);  // NotFound for an unknown id
  std::vector<ExportInfo> List();      // exports that ended on their own are dropped
  void StopAll();

 private:
  explicit ExportRegistry(std::string dir) : dir_(std::move(dir)) {}
  void Forget(const std::string& id);
  std::string dir_;
  std::mutex mu_;
  uint64_t next_ = 1;
  std::map<std::string, std::unique_ptr<NbdExport>> exports_;
};

// Where nbdkit-offhost-plugin.so is: $OFFHOST_NBDKIT_PLUGIN, else beside the running
// executable (or one folder up), else nbdkit's plugin directory.
Result<std::string> FindNbdkitPlugin();

// "HOST:PORT" → HOST and PORT; InvalidArgument for a wildcard host or a malformed address.
Status ParseListenAddress(std::string_view address, std::string* host, std::string* port);

// Stops the export whose nbdkit wrote `pid_file` (--background), after checking that the pid
// is an nbdkit serving our plugin; removes the pid file. `sig` first (SIGKILL after 10 s).
Status StopExportByPidFile(const std::string& pid_file, int sig = 15 /* SIGTERM */);

}  // namespace offhost::proxy
