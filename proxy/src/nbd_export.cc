// Starts and stops nbdkit serving a backup disk with nbdkit-offhost-plugin.so. posix_spawn, not
// fork: offhostd calls this from a multi-threaded gRPC server.
#include "offhost/proxy/nbd_export.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "offhost/storage/datastore.h"

extern char** environ;

namespace offhost::proxy {
namespace fs = std::filesystem;
namespace {

// How long nbdkit may take to check the snapshot, bind and start serving.
constexpr std::chrono::seconds kStartTimeout{60};

constexpr char kPluginName[] = "nbdkit-offhost-plugin.so";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The last lines of nbdkit's log, for an error message.
std::string LogTail(const std::string& path) {
  std::string text = ReadFile(path);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  size_t pos = text.size();
  for (int lines = 0; lines < 5 && pos != std::string::npos && pos > 0; ++lines) {
    pos = text.rfind('\n', pos - 1);
  }
  return pos == std::string::npos ? text : text.substr(pos + 1);
}

bool SocketAnswers(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A socket left by an export that was killed is removed; one that still answers is refused.
Status CheckSocketPath(const std::string& path) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::InvalidArgument("socket path " + path + " is too long for a unix socket (" +
                                   std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                   " bytes at most); choose a shorter path");
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Status::OK();
  if (!S_ISSOCK(st.st_mode)) {
    return Status::AlreadyExists(path + " exists and is not a socket; choose another --socket");
  }
  if (SocketAnswers(path)) {
    return Status::AlreadyExists("something already serves on " + path +
                                 "; stop it (offhost export --stop --socket " + path +
                                 ") or choose another --socket");
  }
  ::unlink(path.c_str());
  return Status::OK();
}

pid_t ReadPid(const std::string& pid_file) {
  std::string text = ReadFile(pid_file);
  char* end = nullptr;
  long pid = std::strtol(text.c_str(), &end, 10);
  return pid > 0 && end != text.c_str() ? static_cast<pid_t>(pid) : 0;
}

// Whether `pid` is an nbdkit running our plugin (not a recycled pid of something else).
bool IsOurNbdkit(pid_t pid) {
  std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  return cmdline.find("nbdkit") != std::string::npos &&
         cmdline.find(kPluginName) != std::string::npos;
}

// Whether `pid` runs (a zombie its parent has not reaped yet has ended).
bool Alive(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

bool WaitGone(pid_t pid, bool child, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (child) {
      int status;
      if (::waitpid(pid, &status, WNOHANG) == pid) return true;
    } else if (!Alive(pid)) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::vector<std::string> Environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
#ifdef OFFHOST_SANITIZER_PRELOAD
  // A sanitized plugin needs the sanitizer runtime loaded before anything else in nbdkit.
  env.push_back("LD_PRELOAD=" OFFHOST_SANITIZER_PRELOAD);
#endif
  return env;
}

std::vector<std::string> NbdkitArgs(const ExportOptions& o, const std::string& plugin,
                                    const std::string& pid_file, const std::string& host,
                                    const std::string& port, const std::string& snapshot) {
  std::vector<std::string> args = {"nbdkit", "-P", pid_file};
  // In the background nbdkit would log to syslog: keep its messages in the log file.
  args.push_back(o.detach ? "--log=stderr" : "-f");
  if (!o.socket.empty()) {
    args.insert(args.end(), {"--unix", o.socket});
  } else {
    args.insert(args.end(), {"-i", host, "-p", port});
  }
  // The overlay: nbdkit's cow filter keeps every write in a temporary file of its own (in
  // $TMPDIR, else /var/tmp), deleted when nbdkit ends. The plugin below it cannot write.
  args.push_back(o.overlay ? "--filter=cow" : "--readonly");
  args.insert(args.end(), {plugin, "datastore=" + o.datastore, "snapshot=" + o.vm + "@" + snapshot,
                           "disk=" + o.disk, "cache=" + std::to_string(o.cache_bytes)});
  return args;
}

Result<pid_t> Spawn(const std::vector<std::string>& args, const ExportOptions& o) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (!o.log_file.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, o.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0640);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  if (o.detach) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  std::vector<char*> argv, envp;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env = Environment();
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, "nbdkit", &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Status::Unavailable(Status::FromErrno("start nbdkit", rc).message() +
                               "; install it (apt-get install nbdkit)");
  }
  return pid;
}

}  // namespace

Status ParseListenAddress(std::string_view address, std::string* host, std::string* port) {
  auto colon = address.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == address.size()) {
    return Status::InvalidArgument("listen address '" + std::string(address) +
                                   "' is not HOST:PORT; give the backup network's address, e.g. "
                                   "10.20.0.4:10809");
  }
  std::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  *host = std::string(h);
  *port = std::string(address.substr(colon + 1));
  if (port->find_first_not_of("0123456789") != std::string::npos) {
    return Status::InvalidArgument("listen address '" + std::string(address) + "': port '" + *port +
                                   "' is not a number");
  }
  if (host->empty() || *host == "*" || *host == "0.0.0.0" || *host == "::" ||
      *host == "0:0:0:0:0:0:0:0") {
    return Status::InvalidArgument(
        "listen address '" + std::string(address) +
        "' listens on every network of the proxy, production networks included; name the "
        "backup-network address (e.g. 10.20.0.4:10809) or use --socket");
  }
  return Status::OK();
}

Result<std::string> FindNbdkitPlugin() {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("OFFHOST_NBDKIT_PLUGIN"); env && *env) {
    if (::access(env, R_OK) == 0) return std::string(env);
    return Status::NotFound("OFFHOST_NBDKIT_PLUGIN=" + std::string(env) +
                            " is not a readable file; point it at nbdkit-offhost-plugin.so");
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / kPluginName);
    candidates.push_back(exe.parent_path().parent_path() / kPluginName);
  }
#ifdef OFFHOST_NBDKIT_PLUGINDIR
  candidates.push_back(fs::path(OFFHOST_NBDKIT_PLUGINDIR) / kPluginName);
#endif
  std::string tried;
  for (const auto& c : candidates) {
    if (::access(c.c_str(), R_OK) == 0) return c.string();
    tried += (tried.empty() ? "" : ", ") + c.string();
  }
  return Status::NotFound(std::string(kPluginName) + " not found (looked at " + tried +
                          "); install it, or set OFFHOST_NBDKIT_PLUGIN to its path");
}

Result<std::unique_ptr<NbdExport>> NbdExport::Start(const ExportOptions& options) {
  ExportOptions o = options;
  if (o.socket.empty() == o.listen.empty()) {
    return Status::InvalidArgument("give exactly one of --socket PATH or --listen HOST:PORT");
  }
  std::string host, port;
  if (!o.listen.empty()) OFFHOST_RETURN_IF_ERROR(ParseListenAddress(o.listen, &host, &port));
  o.datastore = fs::absolute(o.datastore).lexically_normal().string();
  if (!o.socket.empty()) o.socket = fs::absolute(o.socket).lexically_normal().string();

  // The snapshot and disk are checked here, so the message reaches the caller directly.
  auto export_ = std::unique_ptr<NbdExport>(new NbdExport());
  ExportInfo& info = export_->info_;
  {
    OFFHOST_ASSIGN_OR_RETURN(auto ds, storage::Datastore::Open(o.datastore, false));
    OFFHOST_ASSIGN_OR_RETURN(storage::SnapshotRecord snap, ds->FindSnapshot(o.vm, o.snapshot));
    if (o.disk.empty() && snap.disks.size() == 1) o.disk = snap.disks[0].name;
    std::string names;
    for (const auto& d : snap.disks) names += (names.empty() ? "" : ", ") + d.name;
    if (o.disk.empty()) {
      return Status::InvalidArgument(o.vm + "@" + snap.id + " has several disks (" + names +
                                     "); choose one with --disk");
    }
    bool found = false;
    for (const auto& d : snap.disks) {
      if (d.name == o.disk) info.size = d.size;
      found = found || d.name == o.disk;
    }
    if (!found) {
      return Status::NotFound(o.vm + "@" + snap.id + " has no disk '" + o.disk +
                              "'; its disks: " + names + " (give one with --disk)");
    }
    info.datastore = o.datastore;
    info.vm = o.vm;
    info.snapshot = snap.id;
    info.disk = o.disk;
  }
  OFFHOST_ASSIGN_OR_RETURN(std::string plugin, FindNbdkitPlugin());
  if (!o.socket.empty()) OFFHOST_RETURN_IF_ERROR(CheckSocketPath(o.socket));

  std::string pid_file = o.pid_file;
  if (pid_file.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "offhost-export.XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return Status::FromErrno("create a temporary folder", errno);
    export_->private_dir_ = tmpl;
    pid_file = tmpl + "/nbdkit.pid";
  } else {
    pid_file = fs::absolute(pid_file).string();
    ::unlink(pid_file.c_str());
  }
  OFFHOST_ASSIGN_OR_RETURN(info.pid,
                           Spawn(NbdkitArgs(o, plugin, pid_file, host, port, info.snapshot), o));
  info.overlay = o.overlay;
  auto failed = [&](const std::string& what) {
    std::string why = o.log_file.empty() ? "see nbdkit's messages above" : LogTail(o.log_file);
    return Status::Unavailable("nbdkit " + what + " " + o.vm + "@" + info.snapshot + " disk " +
                               o.disk + ": " + why);
  };
  if (o.detach) {
    // nbdkit checks everything (get_ready), binds, forks and exits 0; its child writes the
    // pid file once it serves.
    // Bounded: an nbdkit that failed can hang in its exit handlers (seen with a sanitizer
    // runtime preloaded, after "Address already in use"), and must not hang us with it.
    int status = 0;
    pid_t reaped = 0;
    auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
    while ((reaped = ::waitpid(info.pid, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (reaped != info.pid) {
      ::kill(info.pid, SIGKILL);
      while (::waitpid(info.pid, &status, 0) < 0 && errno == EINTR) {
      }
      export_->ended_ = true;
      return failed("did not start serving");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      export_->ended_ = true;  // reaped: nothing to stop
      return failed("could not serve");
    }
    export_->daemonized_ = true;
    info.pid = 0;
  }
  info.uri = !o.socket.empty()                     ? "nbd+unix:///?socket=" + o.socket
             : host.find(':') != std::string::npos ? "nbd://[" + host + "]:" + port
                                                   : "nbd://" + host + ":" + port;

  // nbdkit writes its pid file once it accepts connections.
  auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (true) {
    pid_t written = ReadPid(pid_file);
    if (written != 0 && (export_->daemonized_ || written == info.pid)) {
      info.pid = written;
      break;
    }
    if ((!export_->daemonized_ && !export_->Running()) ||
        std::chrono::steady_clock::now() > deadline) {
      export_->Stop().IgnoreError();
      return failed("did not start serving");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return export_;
}

NbdExport::~NbdExport() {
  if (!detached_) Stop().IgnoreError();
  if (!private_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(private_dir_, ec);
  }
}

bool NbdExport::Running() {
  if (ended_ || info_.pid == 0) return false;
  if (daemonized_) {
    ended_ = !Alive(info_.pid);
    return !ended_;
  }
  int status;
  if (::waitpid(info_.pid, &status, WNOHANG) == info_.pid) ended_ = true;
  return !ended_;
}

Status NbdExport::Wait(const std::atomic<bool>& stop) {
  while (Running()) {
    if (stop.load()) return Stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Status::OK();
}

Status NbdExport::Stop() {
  if (!Running()) return Status::OK();
  ::kill(info_.pid, SIGTERM);
  if (!WaitGone(info_.pid, !daemonized_, std::chrono::seconds(10))) {
    ::kill(info_.pid, SIGKILL);
    WaitGone(info_.pid, !daemonized_, std::chrono::seconds(5));
  }
  ended_ = true;
  return Status::OK();
}

Status StopExportByPidFile(const std::string& pid_file, int sig) {
  if (::access(pid_file.c_str(), F_OK) != 0) {
    return Status::NotFound("no export: " + pid_file +
                            " does not exist (was it started with --background?)");
  }
  pid_t pid = ReadPid(pid_file);
  if (pid == 0 || !Alive(pid) || !IsOurNbdkit(pid)) {
    ::unlink(pid_file.c_str());
    return Status::NotFound("the export of " + pid_file +
                            " is no longer running (pid file removed)");
  }
  ::kill(pid, sig);
  if (!WaitGone(pid, false, std::chrono::seconds(10))) {
    ::kill(pid, SIGKILL);
    WaitGone(pid, false, std::chrono::seconds(5));
  }
  ::unlink(pid_file.c_str());
  return Status::OK();
}

Result<std::unique_ptr<ExportRegistry>> ExportRegistry::Open(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("create the exports folder " + dir + ": " + ec.message());
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".pid") {
      // Nobody can find these exports any more, and an overlay is throwaway: no grace.
      StopExportByPidFile(entry.path().string(), SIGKILL).IgnoreError();  // gone: fine
    }
    fs::remove(entry.path(), ec);
  }
  return std::unique_ptr<ExportRegistry>(new ExportRegistry(dir));
}

ExportRegistry::~ExportRegistry() { StopAll(); }

Result<ExportInfo> ExportRegistry::Start(ExportOptions options) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = std::to_string(next_++);
  }
  std::string base = dir_ + "/" + id;
  if (options.socket.empty() && options.listen.empty()) options.socket = base + ".sock";
  options.pid_file = base + ".pid";
  options.log_file = base + ".log";
  options.detach = true;  // gRPC's worker threads come and go
  auto started = NbdExport::Start(options);
  if (!started.ok()) {
    std::error_code ec;
    fs::remove(options.log_file, ec);
    return started.status();
  }
  (*started)->info_.id = id;
  ExportInfo info = (*started)->info();
  std::lock_guard<std::mutex> lock(mu_);
  exports_[id] = std::move(*started);
  return info;
}

void ExportRegistry::Forget(const std::string& id) {
  std::error_code ec;
  for (const char* ext : {".sock", ".pid", ".log"}) fs::remove(dir_ + "/" + id + ext, ec);
}

Status ExportRegistry::Stop(const std::string& id) {
  std::unique_ptr<NbdExport> e;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = exports_.find(id);
    if (it == exports_.end()) return Status::NotFound("no export " + id);
    e = std::move(it->second);
    exports_.erase(it);
  }
  Status st = e->Stop();
  e.reset();
  Forget(id);
  return st;
}

std::vector<ExportInfo> ExportRegistry::List() {
  std::vector<std::string> ended;
  std::vector<ExportInfo> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = exports_.begin(); it != exports_.end();) {
      if (it->second->Running()) {
        out.push_back(it->second->info());
        ++it;
      } else {
        ended.push_back(it->first);
        it = exports_.erase(it);
      }
    }
  }
  for (const auto& id : ended) Forget(id);
  return out;
}

void ExportRegistry::StopAll() {
  std::map<std::string, std::unique_ptr<NbdExport>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all.swap(exports_);
  }
  for (auto& [id, e] : all) {
    e->Stop().IgnoreError();
    e.reset();
    Forget(id);
  }
}

}  // namespace offhost::proxy
