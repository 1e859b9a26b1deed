#include "offhost/proxy/backup.h"

#include <chrono>

#include "disk_backup.h"

namespace offhost::proxy {

Result<BackupResult> RunBackup(storage::Datastore& ds, const std::string& vm,
                               std::vector<BackupDisk>& disks, const BackupOptions& options) {
  auto start = std::chrono::steady_clock::now();
  if (disks.empty()) return Status::InvalidArgument("a backup needs at least one --disk");
  // Staging left by backups that were killed is removed before a new one starts.
  ds.CleanupInterrupted().status().IgnoreError();
  if (options.counters) {
    for (const auto& d : disks) options.counters->total_bytes += d.device->size();
  }
  OFFHOST_ASSIGN_OR_RETURN(auto writer, ds.BeginSnapshot(vm));
  for (auto& disk : disks) {
    OFFHOST_ASSIGN_OR_RETURN(
        storage::DiskManifestWriter * manifest,
        writer->AddDisk(disk.name, disk.device->description(), disk.device->size()));
    auto record = BackupOneDisk(ds, *disk.device, *manifest, options);
    if (!record.ok()) {
      return record.status().WithContext("backup of " + vm + " disk " + disk.name);
    }
    OFFHOST_RETURN_IF_ERROR(manifest->Finish(*record));
  }
  BackupResult result;
  OFFHOST_ASSIGN_OR_RETURN(result.snapshot, writer->Commit());
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace offhost::proxy
