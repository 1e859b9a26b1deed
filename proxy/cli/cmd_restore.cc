// offhost restore --datastore DIR VM@SNAPSHOT [--disk NAME] --to FILE|NBD-URI [--force]
// offhost restore [--server ADDR] VM@SNAPSHOT [--disk NAME] --to FILE|NBD-URI [--force]
//   against offhostd: a disk restore job (StartDiskRestore, then WatchJob) into one of its
//   restore_roots or restore_nbd_targets
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "job_watch.h"
#include "offhost/proxy/restore.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"
#include "offhost/v1/restore.grpc.pb.h"

namespace offhost::cli {
namespace {

std::atomic<bool> g_cancel{false};

struct RestoreCliOptions {
  std::string datastore;
  std::string snapshot;  // VM@ID or VM@latest
  std::string disk;
  std::string to;
  bool force = false;
  int threads = 0;
  DaemonOptions daemon;
};

Result<std::pair<std::string, std::string>> SplitSnapshotRef(const std::string& ref) {
  auto at = ref.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == ref.size()) {
    return Status::InvalidArgument("'" + ref +
                                   "' is not VM@SNAPSHOT (e.g. web01@2026-11-25T01:30:49Z or "
                                   "web01@latest); list them with 'offhost snapshots'");
  }
  return std::make_pair(ref.substr(0, at), ref.substr(at + 1));
}

Result<std::string> PickDisk(const storage::SnapshotRecord& s, const std::string& wanted) {
  if (!wanted.empty()) return wanted;
  if (s.disks.size() == 1) return s.disks[0].name;
  std::string names;
  for (const auto& d : s.disks) names += (names.empty() ? "" : ", ") + d.name;
  return Status::InvalidArgument(s.vm + "@" + s.id + " has several disks (" + names +
                                 "); choose one with --disk");
}

// The line both modes end with.
void PrintRestored(const std::string& vm, const std::string& id, const std::string& disk,
                   const std::string& target, uint64_t size, uint64_t written, double seconds) {
  double secs = seconds > 0 ? seconds : 1e-9;
  std::cout << "restored " << vm << "@" << id << " disk " << disk << " to "
            << snapshot_drivers::MaskUri(target) << ": " << HumanBytes(size) << " ("
            << HumanBytes(written) << " data written, rest left sparse), "
            << HumanRate(static_cast<double>(size) / secs) << " in " << HumanDuration(seconds)
            << "\n";
}

// The daemon writes the disk: a file under its restore_roots (the path is taken as the daemon
// sees it, so it is made absolute here) or an NBD export under restore_nbd_targets.
int RestoreDaemon(const RestoreCliOptions& o, const std::string& vm, const std::string& id) {
  if (o.threads != 0) {
    return ReportError(Status::InvalidArgument(
        "--threads sets local decompression threads; against offhostd give --datastore DIR "
        "to use it"));
  }
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  int exit = kExitOk;
  auto snapshot = FindSnapshotResource(**client, vm, id, &exit);
  if (!snapshot.ok()) return exit;
  v1::StartDiskRestoreRequest req;
  auto* spec = req.mutable_spec();
  spec->set_snapshot(*snapshot);
  spec->set_disk(o.disk);
  if (snapshot_drivers::IsNbdUri(o.to)) {
    spec->mutable_nbd()->set_uri(o.to);
  } else {
    spec->mutable_file()->set_path(std::filesystem::absolute(o.to).lexically_normal().string());
    spec->mutable_file()->set_overwrite(o.force);
  }
  auto stub = v1::RestoreService::NewStub((*client)->channel());
  v1::Job job;
  auto ctx = (*client)->Context();
  grpc::Status st = stub->StartDiskRestore(ctx.get(), req, &job);
  if (!st.ok()) return ReportRpcError(st, *ctx, **client);
  auto done =
      WatchToEnd(**client, job.name(), "restore " + (o.disk.empty() ? "disk" : o.disk), &exit);
  if (!done.ok()) return exit;
  if (done->state() != v1::JOB_STATE_SUCCEEDED) {
    std::cerr << "offhost: the restore did not complete; "
              << (spec->has_file() ? spec->file().path() +
                                         " was not written (the daemon removed "
                                         "its .partial file)"
                                   : std::string("the NBD target holds a partial disk"))
              << "\n";
    return ReportJobFailure(*done);
  }
  const v1::DiskRestoreResult& r = done->disk_restore_result();
  double seconds = static_cast<double>(done->end_time().seconds() - done->start_time().seconds()) +
                   (done->end_time().nanos() - done->start_time().nanos()) / 1e9;
  PrintRestored(vm, LastPart(r.snapshot()), r.disk(), r.target(), r.size_bytes(), r.bytes_written(),
                seconds);
  return kExitOk;
}

int RunRestore(const RestoreCliOptions& o) {
  auto ref = SplitSnapshotRef(o.snapshot);
  if (!ref.ok()) return ReportError(ref.status());
  auto daemon = UseDaemon(o.daemon, o.datastore);
  if (!daemon.ok()) return ReportError(daemon.status());
  if (*daemon) return RestoreDaemon(o, ref->first, ref->second);
  auto ds = storage::Datastore::Open(o.datastore, false);
  if (!ds.ok()) return ReportError(ds.status());
  auto snap = (*ds)->FindSnapshot(ref->first, ref->second);
  if (!snap.ok()) return ReportError(snap.status());
  auto disk = PickDisk(*snap, o.disk);
  if (!disk.ok()) return ReportError(disk.status());
  const storage::DiskRecord* rec = nullptr;
  for (const auto& d : snap->disks) {
    if (d.name == *disk) rec = &d;
  }
  if (!rec) {
    std::string names;
    for (const auto& d : snap->disks) names += (names.empty() ? "" : ", ") + d.name;
    return ReportError(Status::NotFound(snap->vm + "@" + snap->id + " has no disk '" + *disk +
                                        "' (it has: " + names + ")"));
  }

  bool is_file = !snapshot_drivers::IsNbdUri(o.to);
  std::unique_ptr<proxy::FileRestoreTarget> file;
  std::unique_ptr<BlockDevice> nbd_target;
  if (is_file) {
    auto t = proxy::FileRestoreTarget::Create(o.to, rec->size, o.force);
    if (!t.ok()) return ReportError(t.status());
    file = std::move(*t);
  } else {
    snapshot_drivers::NbdOpenOptions nbd;
    nbd.writable = true;
    auto t = snapshot_drivers::OpenNbd(o.to, nbd);
    if (!t.ok()) return ReportError(t.status());
    nbd_target = std::move(*t);
  }
  BlockDevice& target = file ? file->device() : *nbd_target;

  // Ctrl-C and SIGTERM stop the restore cleanly (the partial file is removed).
  std::signal(SIGINT, [](int) { g_cancel = true; });
  std::signal(SIGTERM, [](int) { g_cancel = true; });
  proxy::RestoreCounters counters;
  proxy::RestoreOptions options;
  options.threads = o.threads;
  options.target_is_zeroed = file && file->zeroed();
  options.counters = &counters;
  options.cancel = &g_cancel;
  Result<proxy::RestoreResult> r = Status::Cancelled("not run");
  {
    ProgressBar bar("restore " + *disk, [&] {
      return std::make_pair(counters.done_bytes.load(), counters.total_bytes.load());
    });
    r = proxy::RestoreDisk(**ds, *snap, *disk, target, options);
  }
  if (r.ok() && file) {
    Status published = file->Publish();
    if (!published.ok()) r = published;
  }
  if (!r.ok()) {
    if (file) {
      std::cerr << "offhost: removed the incomplete restore target " << o.to << ".partial; " << o.to
                << " was not written\n";
    }
    // A target refused before any write (too small, read-only, unreachable) is untouched.
    if (!file && counters.done_bytes.load() == 0) {
      std::cerr << "offhost: the restore did not start; the NBD target was not written\n";
    } else if (!file) {
      std::cerr << "offhost: the restore did not complete; the NBD target holds a partial disk\n";
    }
    return ReportError(r.status());
  }
  PrintRestored(snap->vm, snap->id, *disk, o.to, rec->size, r->bytes_written, r->seconds);
  return kExitOk;
}

}  // namespace

void AddRestoreCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<RestoreCliOptions>();
  auto* cmd = app.add_subcommand("restore", "Restore a whole disk from a snapshot");
  cmd->add_option("--datastore", o->datastore, "Datastore directory (local mode)");
  AddDaemonOptions(cmd, &o->daemon);
  cmd->add_option("SNAPSHOT", o->snapshot, "VM@SNAPSHOT (or VM@latest)")->required();
  cmd->add_option("--disk", o->disk, "Disk name (optional when the snapshot has one disk)");
  cmd->add_option("--to", o->to,
                  "Target: a new file, or a writable NBD URI (against offhostd: under its "
                  "restore_roots or restore_nbd_targets)")
      ->required();
  cmd->add_flag("--force", o->force, "Overwrite an existing target file");
  cmd->add_option("--threads", o->threads, "Decompression threads (default: one per core)");
  cmd->callback([run, o] { *run = [o] { return RunRestore(*o); }; });
}

}  // namespace offhost::cli
