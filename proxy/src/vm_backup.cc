#include "offhost/proxy/vm_backup.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <future>
#include <optional>
#include <system_error>
#include <thread>
#include <type_traits>

#include "disk_backup.h"
#include "offhost/mount/guest_files.h"
#include "offhost/mount/logical_volumes.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"

namespace offhost::proxy {
namespace {

// The latest snapshot of this VM, if it is the same VM (same UUID when both are known).
Result<std::optional<storage::SnapshotRecord>> FindPrevious(
    storage::Datastore& ds, const snapshot_drivers::VmIdentity& id) {
  OFFHOST_ASSIGN_OR_RETURN(auto all, ds.ListSnapshots(id.name));
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (id.uuid.empty() || it->meta.vm_uuid.empty() || it->meta.vm_uuid == id.uuid) {
      return std::optional<storage::SnapshotRecord>(*it);
    }
  }
  return std::optional<storage::SnapshotRecord>();
}

// Starts `f` on a thread of its own or, when no thread can be had, when its result is asked
// for: either way the caller gets the result, only not as early.
template <typename F>
std::future<std::invoke_result_t<F>> StartAside(F f) {
  try {
    return std::async(std::launch::async, f);
  } catch (const std::system_error&) {
    return std::async(std::launch::deferred, std::move(f));
  }
}

// Test hook: with OFFHOST_TEST_HOLD_VIEW=PATH set, a backup creates PATH.ready once the
// point-in-time view exists and waits (up to 2 minutes) for PATH to appear before reading it.
// Tests use it to write into a running VM at a known moment.
void HoldViewForTests() {
  const char* path = std::getenv("OFFHOST_TEST_HOLD_VIEW");
  if (!path || !*path) return;
  std::FILE* f = std::fopen((std::string(path) + ".ready").c_str(), "w");
  if (f) std::fclose(f);
  for (int i = 0; i < 1200 && !std::filesystem::exists(path); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// One backup of a VM at a time on this proxy, whatever the datastore: a second one would take
// the first one's view for a crashed run's leftovers and tear it down.
class VmLock {
 public:
  static Result<std::unique_ptr<VmLock>> Take(const snapshot_drivers::VmIdentity& id) {
    std::string dir = ::access("/run/lock", W_OK) == 0 ? "/run/lock" : "/tmp";
    std::string path = dir + "/offhost-vm-" + (id.uuid.empty() ? id.name : id.uuid) + ".lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Status::FromErrno("open lock " + path, errno);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return Status::FailedPrecondition("another offhost backup of VM " + id.name +
                                        " is running on this proxy (lock " + path +
                                        "); wait for it to finish");
    }
    return std::unique_ptr<VmLock>(new VmLock(fd));
  }
  ~VmLock() { ::close(fd_); }

 private:
  explicit VmLock(int fd) : fd_(fd) {}
  int fd_;
};

// The device of one disk of the view: the driver's own when it opened one (iSCSI), else its
// NBD export; a logical volume on it when the disk is one (shared LVM on a LUN).
Result<std::shared_ptr<BlockDevice>> OpenViewDisk(const snapshot_drivers::ViewDisk& d,
                                                  const snapshot_drivers::SnapshotRequest& req) {
  std::shared_ptr<BlockDevice> dev = d.device;
  if (!dev) {
    snapshot_drivers::NbdOpenOptions nbd;
    nbd.dirty_bitmap = d.dirty_bitmap;
    // nbd-timeout=SECONDS (0: wait forever): how long a read may wait for the export.
    if (auto t = req.settings.find("nbd-timeout"); t != req.settings.end()) {
      nbd.timeout_seconds = std::max(0, std::atoi(t->second.c_str()));
    }
    OFFHOST_ASSIGN_OR_RETURN(auto nbd_dev, snapshot_drivers::OpenNbd(d.uri, nbd));
    dev = std::move(nbd_dev);
  }
  if (d.logical_volume.empty()) return dev;
  auto slash = d.logical_volume.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == d.logical_volume.size()) {
    return Status::InvalidArgument("'" + d.logical_volume +
                                   "' is not a logical volume; name it as #VG/LV after the URI");
  }
  OFFHOST_ASSIGN_OR_RETURN(
      auto lv, mount::OpenLogicalVolume(std::move(dev), d.logical_volume.substr(0, slash),
                                        d.logical_volume.substr(slash + 1)));
  return std::shared_ptr<BlockDevice>(std::move(lv));
}

// What BackupVm and ReleaseVmLeftovers both do before the driver acts: who the VM is, its
// lock, its latest snapshot (the parent) and the drivers' work folder.
struct Prepared {
  std::unique_ptr<snapshot_drivers::SnapshotDriver> driver;
  snapshot_drivers::VmIdentity id;
  std::unique_ptr<VmLock> lock;
  std::optional<storage::SnapshotRecord> previous;
};

Result<Prepared> Prepare(storage::Datastore& ds, VmBackupRequest& req) {
  Prepared p;
  OFFHOST_ASSIGN_OR_RETURN(p.driver, snapshot_drivers::MakeDriver(req.driver));
  OFFHOST_ASSIGN_OR_RETURN(p.id, p.driver->Identify(req.snapshot));
  if (!req.vm_name.empty()) p.id.name = req.vm_name;
  OFFHOST_RETURN_IF_ERROR(storage::ValidateName("VM", p.id.name)
                              .WithContext("use --vm NAME to give the VM a name offhost accepts"));
  if (p.driver->one_backup_per_vm()) {
    OFFHOST_ASSIGN_OR_RETURN(p.lock, VmLock::Take(p.id));
  }
  OFFHOST_ASSIGN_OR_RETURN(p.previous, FindPrevious(ds, p.id));
  req.snapshot.parent_checkpoint = p.previous ? p.previous->meta.checkpoint : "";
  if (req.snapshot.work_dir.empty()) {
    // Scratch files and sockets of drivers, apart from the datastore's staging directories.
    req.snapshot.work_dir = ds.dir() + "/tmp/views";
    std::error_code ec;
    std::filesystem::create_directories(req.snapshot.work_dir, ec);
    if (ec) return Status::IOError("create " + req.snapshot.work_dir + ": " + ec.message());
  }
  return p;
}

}  // namespace

Result<std::vector<std::string>> ReleaseVmLeftovers(storage::Datastore& ds, VmBackupRequest req) {
  OFFHOST_ASSIGN_OR_RETURN(Prepared p, Prepare(ds, req));
  return p.driver->ReleaseLeftovers(req.snapshot);
}

Result<VmBackupResult> BackupVm(storage::Datastore& ds, VmBackupRequest req) {
  std::vector<std::pair<std::string, double>> phases;
  auto mark = std::chrono::steady_clock::now();
  auto phase = [&](const char* name) {
    auto now = std::chrono::steady_clock::now();
    phases.emplace_back(name, std::chrono::duration<double>(now - mark).count());
    mark = now;
  };
  OFFHOST_ASSIGN_OR_RETURN(Prepared prepared, Prepare(ds, req));
  auto& driver = prepared.driver;
  const snapshot_drivers::VmIdentity& id = prepared.id;
  const std::optional<storage::SnapshotRecord>& previous = prepared.previous;

  phase("prepare");
  // The datastore's part of starting a snapshot (an index write made durable) and the first
  // touch of the read buffers overlap the hypervisor's taking its view, which takes tens of
  // milliseconds. A writer never used aborts: the begun snapshot is gone again when the view
  // cannot be taken.
  if (req.options.catalog) mount::PreloadFileSystemLibraries();  // cataloging comes at the end
  auto begun = StartAside([&ds, &id, &req] {
    auto writer = ds.BeginSnapshot(id.name);
    WarmBackupBuffers(ds, req.options);
    return writer;
  });
  auto taken = driver->Take(req.snapshot);
  Result<std::unique_ptr<storage::SnapshotWriter>> writer = begun.get();
  OFFHOST_ASSIGN_OR_RETURN(auto view, std::move(taken));
  phase("snapshot");
  HoldViewForTests();
  // Once everything is read the hypervisor ends its export (tens of milliseconds) while the
  // datastore commits; the view is released only after that.
  std::future<Status> export_ended;
  auto run = [&]() -> Result<BackupResult> {
    if (!writer.ok()) return writer.status();
    std::vector<BackupDisk> disks;
    for (const auto& d : view->disks) {
      auto dev = OpenViewDisk(d, req.snapshot);
      if (!dev.ok()) return dev.status().WithContext("disk " + d.name);
      disks.push_back({d.name, std::move(*dev), d.full_reason, d.identity});
    }
    BackupOptions options = req.options;
    options.previous = previous ? &*previous : nullptr;
    options.force_full = options.force_full || req.snapshot.full;
    options.meta.vm_uuid = id.uuid.empty() ? view->vm_uuid : id.uuid;
    options.meta.driver = req.driver;
    options.meta.consistency = view->consistency;
    options.meta.consistency_reason = view->consistency_reason;
    options.meta.checkpoint = view->checkpoint;
    options.meta.vm_config = view->vm_config;
    options.sources_read = [&, chained = options.sources_read] {
      if (chained) chained();
      for (auto& d : disks) d.device.reset();  // leave before the server goes
      export_ended = StartAside([&view] { return view->EndExport(); });
    };
    return RunBackup(ds, id.name, std::move(*writer), disks, options);
  };
  Result<BackupResult> backup = run();
  phase("backup");
  // What the export's end could not do, Release does again and reports. Drivers do not throw;
  // were one to, the view must still be released as committed or not, not by its destructor.
  if (export_ended.valid()) {
    try {
      export_ended.get().IgnoreError();
    } catch (const std::exception&) {
    }
  }
  // The view is released whatever happened; a failed release does not undo a good backup.
  Status released = view->Release(backup.ok());
  phase("release");
  if (!backup.ok()) {
    if (!released.ok()) {
      return backup.status().WithContext(
          "(and releasing the snapshot failed: " + released.message() + ")");
    }
    return backup.status();
  }
  VmBackupResult result;
  result.backup = std::move(*backup);
  result.excluded = view->excluded;
  if (!released.ok()) result.release_warning = released.message();
  result.phases = std::move(phases);
  return result;
}

}  // namespace offhost::proxy
