// offhost export [--datastore DIR] VM@SNAPSHOT [--disk NAME] (--socket PATH | --listen HOST:PORT)
//                [--overlay] [--cache-mib N] [--background [--pid-file F] [--log F]]
// offhost export --stop (--socket PATH | --pid-file F)
// offhost export [--server ADDR] VM@SNAPSHOT [--disk NAME] [--listen HOST:PORT] [--overlay]
// offhost export [--server ADDR] --list | --stop-export exports/ID
//   against offhostd (no --datastore): ExportService; the export runs in the daemon until
//   --stop-export or the daemon stops
//   Instant recovery (docs/instant-recovery.md): a backup disk served over NBD by nbdkit with
//   our plugin. In the foreground until Ctrl-C or SIGTERM, like `offhost mount`; --background
//   returns once it serves and leaves a pid file for --stop.
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "offhost/proxy/nbd_export.h"
#include "offhost/v1/export.grpc.pb.h"
#include "open_snapshot.h"

namespace offhost::cli {
namespace {

std::atomic<bool> g_stop{false};

struct ExportCliOptions {
  std::string datastore;
  std::string ref;  // VM@SNAPSHOT
  std::string disk;
  std::string socket;
  std::string listen;
  bool overlay = false;
  size_t cache_mib = 256;
  bool background = false;
  std::string pid_file;
  std::string log_file;
  bool stop = false;
  bool list = false;        // daemon: ListExports
  std::string stop_export;  // daemon: StopExport
  DaemonOptions daemon;
};

// --background's pid file: given, else beside the socket (PATH.pid).
Result<std::string> PidFile(const ExportCliOptions& o) {
  if (!o.pid_file.empty()) return o.pid_file;
  if (!o.socket.empty()) return o.socket + ".pid";
  return Status::InvalidArgument(
      "with --listen, give --pid-file FILE (for --background and "
      "--stop)");
}

std::string LogFileFor(const std::string& pid_file) {
  const std::string ext = ".pid";
  if (pid_file.size() > ext.size() && pid_file.ends_with(ext)) {
    return pid_file.substr(0, pid_file.size() - ext.size()) + ".log";
  }
  return pid_file + ".log";
}

int RunStop(const ExportCliOptions& o) {
  if (o.socket.empty() && o.pid_file.empty()) {
    return ReportError(Status::InvalidArgument(
        "give the --socket PATH or the --pid-file FILE of the export to stop"));
  }
  auto pid_file = PidFile(o);
  if (!pid_file.ok()) return ReportError(pid_file.status());
  if (Status st = proxy::StopExportByPidFile(*pid_file); !st.ok()) return ReportError(st);
  std::cout << "stopped the export of " << *pid_file << std::endl;
  return kExitOk;
}

void PrintDaemonExport(const v1::Export& e, const char* verb) {
  const std::string& snap = e.snapshot();
  std::cout << verb << " " << LastPart(snap.substr(0, snap.find("/snapshots/"))) << "@"
            << LastPart(snap) << " disk " << e.disk() << " (" << HumanBytes(e.size_bytes()) << ", "
            << (e.overlay() ? "writes kept in a throwaway overlay" : "read-only") << ") at "
            << e.uri() << " (offhostd " << e.name() << ")" << std::endl;
}

// Against offhostd: the export runs in the daemon, not in this process.
int RunExportDaemon(const ExportCliOptions& o) {
  if (!o.socket.empty() || o.background || !o.pid_file.empty()) {
    return ReportError(Status::InvalidArgument(
        "against offhostd the daemon chooses the unix socket and runs the export until "
        "--stop-export: leave out --socket, --background and --pid-file (or give --datastore "
        "DIR to export locally)"));
  }
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  auto stub = v1::ExportService::NewStub((*client)->channel());
  auto ctx = (*client)->Context();
  if (o.list) {
    v1::ListExportsResponse resp;
    grpc::Status st = stub->ListExports(ctx.get(), {}, &resp);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    std::vector<std::vector<std::string>> rows;
    for (const auto& e : resp.exports()) {
      rows.push_back({e.name(), LastPart(e.snapshot()), e.disk(), e.uri(),
                      e.overlay() ? "overlay" : "read-only", e.started_by()});
    }
    PrintTable({"EXPORT", "SNAPSHOT", "DISK", "URI", "WRITES", "BY"}, rows, {});
    return kExitOk;
  }
  if (!o.stop_export.empty()) {
    v1::StopExportRequest req;
    req.set_name(o.stop_export);
    v1::Export e;
    grpc::Status st = stub->StopExport(ctx.get(), req, &e);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    PrintDaemonExport(e, "stopped the export of");
    return kExitOk;
  }
  auto ref = ParseSnapshotPath(o.ref);
  if (!ref.ok()) return ReportError(ref.status());
  int exit = kExitOk;
  auto snapshot = FindSnapshotResource(**client, ref->vm, ref->snapshot, &exit);
  if (!snapshot.ok()) return exit;
  v1::StartExportRequest req;
  req.set_snapshot(*snapshot);
  req.set_disk(o.disk);
  req.set_overlay(o.overlay);
  req.set_listen_address(o.listen);
  req.set_cache_bytes(uint64_t{o.cache_mib} << 20);
  v1::Export e;
  grpc::Status st = stub->StartExport(ctx.get(), req, &e);
  if (!st.ok()) return ReportRpcError(st, *ctx, **client);
  PrintDaemonExport(e, "exporting");
  std::cout << "stop with: offhost export --stop-export " << e.name() << std::endl;
  return kExitOk;
}

int RunExport(const ExportCliOptions& o) {
  if (o.stop) return RunStop(o);
  if (o.list || !o.stop_export.empty()) return RunExportDaemon(o);
  if (o.ref.empty()) {
    return ReportError(Status::InvalidArgument("give the backup to export: VM@SNAPSHOT"));
  }
  std::string local = o.datastore;
  if (const char* env = std::getenv("OFFHOST_DATASTORE"); local.empty() && env) local = env;
  auto daemon = UseDaemon(o.daemon, local);
  if (!daemon.ok()) return ReportError(daemon.status());
  if (*daemon) return RunExportDaemon(o);
  auto ref = ParseSnapshotPath(o.ref);
  if (!ref.ok()) return ReportError(ref.status());
  if (ref->path != "/") {
    return ReportError(Status::InvalidArgument(
        "export serves a whole disk: give VM@SNAPSHOT and --disk, not a path"));
  }
  auto ds_dir = DatastoreDir(o.datastore);
  if (!ds_dir.ok()) return ReportError(ds_dir.status());
  if (o.cache_mib < 8)
    return ReportError(Status::InvalidArgument("--cache-mib must be at least 8"));

  proxy::ExportOptions options;
  options.datastore = *ds_dir;
  options.vm = ref->vm;
  options.snapshot = ref->snapshot;
  options.disk = o.disk;
  options.socket = o.socket;
  options.listen = o.listen;
  options.overlay = o.overlay;
  options.cache_bytes = uint64_t{o.cache_mib} << 20;
  if (o.background) {
    auto pid_file = PidFile(o);
    if (!pid_file.ok()) return ReportError(pid_file.status());
    options.pid_file = *pid_file;
    options.log_file = o.log_file.empty() ? LogFileFor(*pid_file) : o.log_file;
    options.detach = true;
  }
  auto started = proxy::NbdExport::Start(options);
  if (!started.ok()) return ReportError(started.status());
  proxy::NbdExport& server = **started;
  const proxy::ExportInfo& info = server.info();
  std::cout << "exporting " << info.vm << "@" << info.snapshot << " disk " << info.disk << " ("
            << HumanBytes(info.size) << ", "
            << (info.overlay ? "writes kept in a throwaway overlay" : "read-only") << ") at "
            << info.uri << std::endl;
  if (o.background) {
    server.Detach();
    std::cout << "serving in the background (nbdkit pid " << info.pid << ", log "
              << options.log_file << "); stop with: offhost export --stop "
              << (o.pid_file.empty() && !o.socket.empty() ? "--socket " + o.socket
                                                          : "--pid-file " + options.pid_file)
              << std::endl;
    return kExitOk;
  }
  std::cout << "Ctrl-C stops the export" << (info.overlay ? " and drops the overlay" : "")
            << std::endl;
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  if (Status st = server.Wait(g_stop); !st.ok()) return ReportError(st);
  if (!g_stop) {
    return ReportError(Status::Unavailable("nbdkit ended on its own; see its messages above"));
  }
  std::cout << "stopped the export of " << info.vm << "@" << info.snapshot << " disk " << info.disk
            << std::endl;
  return kExitOk;
}

}  // namespace

void AddExportCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<ExportCliOptions>();
  auto* c = app.add_subcommand(
      "export",
      "Serve a backup disk over NBD (instant recovery): boot a VM from its backup while the "
      "restore runs");
  c->add_option("SNAPSHOT", o->ref, "VM@SNAPSHOT, e.g. web01@latest");
  c->add_option("--datastore", o->datastore, "Datastore directory (default $OFFHOST_DATASTORE)");
  c->add_option("--disk", o->disk, "Disk of the backup (may be left out when it has one)");
  auto* sock = c->add_option("--socket", o->socket, "Serve on this unix socket");
  auto* listen =
      c->add_option("--listen", o->listen,
                    "Serve on HOST:PORT, an address of the backup network (never 0.0.0.0 or [::])");
  sock->excludes(listen);
  c->add_flag("--overlay", o->overlay,
              "Accept writes into a throwaway overlay (nbdkit's cow filter, a temporary file); "
              "the backup is never written");
  c->add_option("--cache-mib", o->cache_mib, "Memory for decoded chunks, in MiB (default 256)");
  c->add_flag("--background", o->background,
              "Return once serving; stop later with offhost export --stop");
  c->add_option("--pid-file", o->pid_file,
                "Pid file of a --background export (default SOCKET.pid)");
  c->add_option("--log", o->log_file,
                "nbdkit's messages of a --background export (default beside the pid file)");
  c->add_flag("--stop", o->stop,
              "Stop the --background export of --socket PATH or --pid-file FILE");
  c->add_flag("--list", o->list, "Against offhostd: list its exports");
  c->add_option("--stop-export", o->stop_export,
                "Against offhostd: stop the export exports/ID (as --list shows it)");
  AddDaemonOptions(c, &o->daemon);
  c->callback([run, o] { *run = [o] { return RunExport(*o); }; });
}

}  // namespace offhost::cli
