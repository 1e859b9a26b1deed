// One disk's backup pipeline (private to proxy/).
#pragma once

#include <functional>
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

// `reads_done`, when set, is called once on the calling thread as soon as `device` will not
// be read again (every range is read and none is left that could re-read it), while the last
// chunks are still being hashed and stored: the caller can go on with what needs the source
// (the catalog) or end its export. It is not called when reading failed.
Result<storage::DiskRecord> BackupOneDisk(storage::Datastore& ds, BlockDevice& device,
                                          storage::DiskManifestWriter& manifest,
                                          const BackupOptions& options,
                                          std::optional<PreviousDisk> previous,
                                          const std::function<void()>& reads_done = {});

}  // namespace offhost::proxy
