// One disk's backup pipeline (private to proxy/).
#pragma once

#include <memory>
#include <optional>

#include "offhost/proxy/backup.h"

namespace offhost::proxy {

// The same disk in the previous snapshot, for an incremental: `device` must then have a dirty
// map relative to it. Two readers of that one manifest: one to plan the ranges, one to claim
// its chunks ahead of them (ChunkClaimer).
struct PreviousDisk {
  std::unique_ptr<storage::ManifestReader> manifest;
  std::unique_ptr<storage::ManifestReader> claims;
};

// Maps the buffer pool that a backup with `options` into `ds` will use and touches its first
// buffers, so their page faults are taken before the backup (for one waiting on a hypervisor)
// rather than while it reads. The memory is kept for the next backup of this process.
void WarmBackupBuffers(const storage::Datastore& ds, const BackupOptions& options);

Result<storage::DiskRecord> BackupOneDisk(storage::Datastore& ds, BlockDevice& device,
                                          storage::DiskManifestWriter& manifest,
                                          const BackupOptions& options,
                                          std::optional<PreviousDisk> previous);

}  // namespace offhost::proxy
