// offhost restore --datastore DIR VM@SNAPSHOT [--disk NAME] --to FILE|NBD-URI [--force]
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "offhost/proxy/restore.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"

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

int RunRestore(const RestoreCliOptions& o) {
  auto ref = SplitSnapshotRef(o.snapshot);
  if (!ref.ok()) return ReportError(ref.status());
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
      std::cerr << "offhost: removed the incomplete restore target " << o.to
                << ".partial; " << o.to << " was not written\n";
    }
    if (!file) std::cerr << "offhost: the restore did not complete; the NBD target holds a partial disk\n";
    return ReportError(r.status());
  }
  double secs = r->seconds > 0 ? r->seconds : 1e-9;
  std::cout << "restored " << snap->vm << "@" << snap->id << " disk " << *disk << " to "
            << snapshot_drivers::MaskUri(o.to) << ": " << HumanBytes(rec->size) << " ("
            << HumanBytes(r->bytes_written) << " data written, rest left sparse), "
            << HumanRate(static_cast<double>(rec->size) / secs) << " in "
            << HumanDuration(r->seconds) << "\n";
  return kExitOk;
}

}  // namespace

void AddRestoreCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<RestoreCliOptions>();
  auto* cmd = app.add_subcommand("restore", "Restore a whole disk from a snapshot");
  cmd->add_option("--datastore", o->datastore, "Datastore directory")->required();
  cmd->add_option("SNAPSHOT", o->snapshot, "VM@SNAPSHOT (or VM@latest)")->required();
  cmd->add_option("--disk", o->disk, "Disk name (optional when the snapshot has one disk)");
  cmd->add_option("--to", o->to, "Target: a new file, or a writable NBD URI")->required();
  cmd->add_flag("--force", o->force, "Overwrite an existing target file");
  cmd->add_option("--threads", o->threads, "Decompression threads (default: one per core)");
  cmd->callback([run, o] { *run = [o] { return RunRestore(*o); }; });
}

}  // namespace offhost::cli
