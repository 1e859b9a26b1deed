// A whole VM backup through a snapshot driver: identify the VM, find its previous snapshot
// (the base for incrementals), take the point-in-time view, back up its disks, commit, and
// release the view — always, whatever happened.
#pragma once

#include <string>
#include <vector>

#include "offhost/proxy/backup.h"
#include "offhost/snapshot-drivers/driver.h"

namespace offhost::proxy {

struct VmBackupRequest {
  std::string driver = "nbd";
  snapshot_drivers::SnapshotRequest snapshot;  // vm, settings, full, work_dir
  std::string vm_name;    // offhost's name for the VM; empty = the driver's name for it
  BackupOptions options;  // previous and meta are filled in here
};

struct VmBackupResult {
  BackupResult backup;
  std::vector<snapshot_drivers::ExcludedDisk> excluded;
  std::string release_warning;  // the view could not be fully released (the backup is fine)
  // Where the time went, in order: prepare (driver, lock, previous snapshot), snapshot (the
  // hypervisor's point-in-time view), backup (read, store, catalog, commit), release.
  std::vector<std::pair<std::string, double>> phases;
};

Result<VmBackupResult> BackupVm(storage::Datastore& ds, VmBackupRequest request);

// Releases what an interrupted backup of the request's VM left (a proxy killed before its
// view was released; SnapshotDriver::ReleaseLeftovers), under the same per-VM lock a backup
// takes and with the datastore's latest checkpoint of the VM kept as the parent. Returns one
// line per thing released. FailedPrecondition when a backup of the VM runs now (its Take
// cleans up anyway).
Result<std::vector<std::string>> ReleaseVmLeftovers(storage::Datastore& ds,
                                                    VmBackupRequest request);

}  // namespace offhost::proxy
