// offhost mount [--datastore DIR] VM@SNAPSHOT[:/path] MOUNTPOINT [--allow-other] [--background]
//               [--cache-mib N]
// offhost mount [--server ADDR] ... — without a datastore directory, the snapshot is one of
// offhostd's: folders are listed with its catalog and files read with DownloadFiles
// (remote_guest_files.h), so a backup on a remote proxy can be browsed with ls/cat/cp.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "fuse_tree.h"
#include "offhost/v1/catalog.grpc.pb.h"
#include "open_snapshot.h"
#include "remote_guest_files.h"

namespace offhost::cli {
namespace {

struct MountCliOptions {
  std::string datastore;
  DaemonOptions daemon;
  std::string ref;  // VM@SNAPSHOT[:/path]
  std::string dir;
  bool allow_other = false;
  bool background = false;
  size_t cache_mib = 256;
};

std::string Absolute(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : path;
}

// An errno from looking at the mount point, with a hint for a FUSE mount whose process died.
Status MountpointError(const std::string& what, const std::string& dir, int err) {
  Status st = Status::FromErrno(what, err);
  if (err != ENOTCONN) return st;
  return Status::Unavailable(st.message() +
                             "; a mount whose process is gone is still there: unmount it with "
                             "fusermount3 -u " +
                             dir);
}

// The mount point must be an existing, empty directory: mounting over files would hide them.
Status CheckMountpoint(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) {
      return Status::InvalidArgument("mount point " + dir +
                                     " does not exist; create it first (mkdir " + dir + ")");
    }
    return MountpointError("mount point " + dir, dir, err);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("mount point " + dir + " is not a directory");
  }
  DIR* d = ::opendir(dir.c_str());
  if (!d) return MountpointError("open mount point " + dir, dir, errno);
  bool empty = true;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  if (!empty) {
    return Status::InvalidArgument("mount point " + dir +
                                   " is not empty; mount onto an empty directory");
  }
  return Status::OK();
}

Status CheckFuseDevice() {
  struct stat st;
  if (::stat("/dev/fuse", &st) != 0) {
    return Status::Unavailable(
        "FUSE is not available here: /dev/fuse is missing. Load the kernel module (modprobe "
        "fuse); in a container, pass the device in (docker run --device /dev/fuse --cap-add "
        "SYS_ADMIN). Without FUSE, browse with 'offhost ls' and copy with 'offhost restore-file'");
  }
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    return Status::Unavailable(
        "FUSE is not usable by this user: " + Status::FromErrno("/dev/fuse", errno).message() +
        "; run as root, or give /dev/fuse mode 0666 as Debian does (chmod 0666 /dev/fuse)");
  }
  return Status::OK();
}

// --background: the parent waits until the child has mounted (or failed) and exits with the
// child's exit code, so errors still reach the terminal and scripts can rely on the status.
class Background {
 public:
  // In the parent: never returns. In the child: returns, detached from the terminal's session.
  Status Fork() {
    if (::pipe(pipe_) != 0) return Status::FromErrno("create a pipe", errno);
    pid_t pid = ::fork();
    if (pid < 0) return Status::FromErrno("fork", errno);
    if (pid > 0) {
      ::close(pipe_[1]);
      unsigned char code = static_cast<unsigned char>(kExitFailed);
      ssize_t n;
      while ((n = ::read(pipe_[0], &code, 1)) < 0 && errno == EINTR) {
      }
      if (n != 1) std::cerr << "offhost: error: the mount process ended before mounting\n";
      std::exit(n == 1 ? static_cast<int>(code) : static_cast<int>(kExitFailed));
    }
    ::close(pipe_[0]);
    ::setsid();  // Ctrl-C in the terminal no longer reaches it
    return Status::OK();
  }

  // In the child: reports `code` to the waiting parent (once).
  void Report(int code) {
    if (pipe_[1] < 0) return;
    unsigned char c = static_cast<unsigned char>(code);
    [[maybe_unused]] ssize_t n = ::write(pipe_[1], &c, 1);  // the parent may be gone
    ::close(pipe_[1]);
    pipe_[1] = -1;
  }

  // In the child, once mounted: no terminal, no working directory held.
  static void Detach() {
    std::fflush(stdout);
    std::fflush(stderr);
    // Failures leave the old streams in place, which is harmless.
    [[maybe_unused]] FILE* in = std::freopen("/dev/null", "r", stdin);
    [[maybe_unused]] FILE* out = std::freopen("/dev/null", "w", stdout);
    [[maybe_unused]] FILE* err = std::freopen("/dev/null", "w", stderr);
    [[maybe_unused]] int rc = ::chdir("/");
  }

 private:
  int pipe_[2] = {-1, -1};
};

// Checks shared by both modes; `mountpoint` gets the absolute path (the background process
// leaves the working directory).
Status CheckMount(const MountCliOptions& o, std::string* mountpoint) {
  if (o.cache_mib < 8) return Status::InvalidArgument("--cache-mib must be at least 8");
  OFFHOST_RETURN_IF_ERROR(CheckMountpoint(o.dir));
  OFFHOST_RETURN_IF_ERROR(CheckFuseDevice());
  *mountpoint = Absolute(o.dir);
  return Status::OK();
}

// Serves `files` (the snapshot `name`, started at `started`) until unmounted.
int Serve(const MountCliOptions& o, Background& bg, mount::GuestFiles& files,
          const SnapshotPath& ref, const std::string& name, int64_t started,
          const std::string& mountpoint);

// Against offhostd: the snapshot's files through its Catalog and Restore services.
int RunMountDaemon(const MountCliOptions& o) {
  auto ref = ParseSnapshotPath(o.ref);
  if (!ref.ok()) return ReportError(ref.status());
  std::string mountpoint;
  if (Status st = CheckMount(o, &mountpoint); !st.ok()) return ReportError(st);
  Background bg;
  if (o.background) {
    // Before the gRPC channel starts its threads: only the calling thread survives fork.
    if (Status st = bg.Fork(); !st.ok()) return ReportError(st);
  }
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) {
    int code = ReportError(client.status());
    bg.Report(code);
    return code;
  }
  int exit = kExitOk;
  auto snapshot = FindSnapshotResource(**client, ref->vm, ref->snapshot, &exit);
  if (!snapshot.ok()) {
    bg.Report(exit);
    return exit;
  }
  auto files = RemoteGuestFiles::Open(**client, *snapshot);
  if (!files.ok()) {
    int code = ReportError(files.status());
    bg.Report(code);
    return code;
  }
  // The snapshot's start time is shown as the times of "/", as in local mode.
  int64_t started = 0;
  {
    auto stub = v1::CatalogService::NewStub((*client)->channel());
    v1::GetSnapshotRequest req;
    req.set_name(*snapshot);
    v1::Snapshot snap;
    auto ctx = (*client)->Context();
    if (stub->GetSnapshot(ctx.get(), req, &snap).ok()) started = FromProto(snap).started;
  }
  ref->snapshot = LastPart(*snapshot);
  return Serve(o, bg, **files, *ref, ref->vm + "@" + ref->snapshot, started, mountpoint);
}

int RunMountLocal(const MountCliOptions& o) {
  auto ref = ParseSnapshotPath(o.ref);
  if (!ref.ok()) return ReportError(ref.status());
  auto ds_dir = DatastoreDir(o.datastore);
  if (!ds_dir.ok()) return ReportError(ds_dir.status());
  std::string mountpoint;
  if (Status st = CheckMount(o, &mountpoint); !st.ok()) return ReportError(st);
  const std::string datastore = Absolute(*ds_dir);

  Background bg;
  if (o.background) {
    // Before anything starts threads (RocksDB does): only the calling thread survives fork.
    if (Status st = bg.Fork(); !st.ok()) return ReportError(st);
  }
  auto opened = OpenSnapshotFiles(datastore, &*ref);
  if (!opened.ok()) {
    int code = ReportError(opened.status());
    bg.Report(code);
    return code;
  }
  return Serve(o, bg, opened->files->files(), *ref, ref->vm + "@" + ref->snapshot,
               opened->snap.started, mountpoint);
}

int Serve(const MountCliOptions& o, Background& bg, mount::GuestFiles& files,
          const SnapshotPath& ref, const std::string& name, int64_t started,
          const std::string& mountpoint) {
  auto fail = [&](const Status& st) {
    int code = ReportError(st);
    bg.Report(code);
    return code;
  };
  const std::string shown = name + (ref.path == "/" ? "" : ":" + ref.path);
  auto root = files.Stat(ref.path);
  if (!root.ok()) return fail(root.status());
  if (root->type != mount::FileType::kDirectory) {
    return fail(Status::InvalidArgument(
        shown + " is not a folder; mount a folder or the whole backup (" + name + ")"));
  }

  FuseMountOptions options;
  options.mountpoint = mountpoint;
  options.fsname = "offhost:" + name;
  options.root = ref.path;
  options.root_time = started;
  options.allow_other = o.allow_other;
  options.cache.budget = o.cache_mib << 20;
  Status st = ServeFuse(files, options, [&] {
    if (o.background) {
      std::cout << "mounted " << shown << " at " << o.dir << " in the background (pid "
                << ::getpid() << "); unmount with: fusermount3 -u " << o.dir << std::endl;
      Background::Detach();
      bg.Report(kExitOk);
    } else {
      std::cout << "mounted " << shown << " at " << o.dir << "; unmount with: fusermount3 -u "
                << o.dir << std::endl;
    }
  });
  if (!st.ok()) return fail(st);
  if (!o.background) std::cout << "unmounted " << shown << " from " << o.dir << std::endl;
  return kExitOk;
}

int RunMount(const MountCliOptions& o) {
  // $OFFHOST_DATASTORE names a local datastore unless --server was given, as for ls.
  const char* env = std::getenv("OFFHOST_DATASTORE");
  std::string dir = !o.datastore.empty() || !o.daemon.server.empty() || !env ? o.datastore : env;
  auto daemon = UseDaemon(o.daemon, dir);
  if (!daemon.ok()) return ReportError(daemon.status());
  return *daemon ? RunMountDaemon(o) : RunMountLocal(o);
}

}  // namespace

void AddMountCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<MountCliOptions>();
  auto* m = app.add_subcommand(
      "mount",
      "Mount the files of a backup read-only (FUSE); unmount with fusermount3 -u DIR or Ctrl-C");
  m->add_option("--datastore", o->datastore,
                "Datastore directory (local mode; default $OFFHOST_DATASTORE)");
  AddDaemonOptions(m, &o->daemon);
  m->add_option("SNAPSHOT", o->ref,
                "VM@SNAPSHOT[:/folder], e.g. web01@latest or web01@latest:/vda1/home")
      ->required();
  m->add_option("DIR", o->dir, "Empty directory to mount on")->required();
  m->add_flag("--allow-other", o->allow_other,
              "Let other users in (needs user_allow_other in /etc/fuse.conf unless root); the "
              "guest's modes and owners are then enforced");
  m->add_flag("--background", o->background,
              "Return once mounted and keep serving in the background");
  m->add_option("--cache-mib", o->cache_mib,
                "Memory for file data read ahead, in MiB (default 256)");
  m->callback([run, o] { *run = [o] { return RunMount(*o); }; });
}

}  // namespace offhost::cli
