// Backup pipeline: read → hash → dedupe lookup → compress → write, for every disk of a VM,
// then one atomic commit of the snapshot. Uses every core; memory is bounded by the options
// (a fixed pool of chunk buffers), never by the disk's size.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "offhost/common/block_device.h"
#include "offhost/storage/datastore.h"

namespace offhost::proxy {

struct BackupDisk {
  std::string name;
  std::shared_ptr<BlockDevice> device;  // may be shared with the driver's view
  // Why the device has no changed-block map (shown and stored when the disk gets a full).
  std::string no_dirty_map_reason;
  // The image or volume behind the disk, when the driver knows it (see ViewDisk::identity).
  std::string identity;
};

// Live counters a progress display may poll from another thread.
struct BackupCounters {
  std::atomic<uint64_t> total_bytes{0};  // logical size of all disks
  std::atomic<uint64_t> done_bytes{0};   // logical bytes processed
  std::atomic<uint64_t> bytes_read{0};   // bytes read from the sources
  std::atomic<uint64_t> new_bytes{0};    // encoded bytes added to the datastore
};

struct BackupOptions {
  int threads = 0;                            // hashing/compression threads; 0 = one per core
  uint32_t read_ahead = 16u * 1024 * 1024;    // bytes of reads issued together
  BackupCounters* counters = nullptr;         // optional
  const std::atomic<bool>* cancel = nullptr;  // optional; set to stop the backup
  // Incremental forever: a disk whose device has a dirty map relative to this snapshot (same
  // disk name and size) reads only changed ranges; unchanged ones are taken from `previous`.
  // The result is a complete snapshot, restorable on its own.
  const storage::SnapshotRecord* previous = nullptr;
  storage::SnapshotMeta meta;  // stored with the snapshot
  // Forces a full read of every disk even when an incremental is possible.
  bool force_full = false;
  // Catalogs every guest file (docs/catalog-format.md) once the disks are read, from the same
  // point-in-time view, reading only file-system metadata.
  bool catalog = true;
  // Bandwidth limits: called with the size of each batch of source reads before it is read,
  // returns when it may be read (an error stops the backup). Unset: reads are not limited,
  // at no cost.
  std::function<Status(uint64_t)> throttle;
  // Called once every disk and the catalog are read, before the commit, possibly while the
  // last disk's chunks are still being stored: from then on the sources are not read again
  // (a VM backup lets go of its devices and ends the hypervisor's export meanwhile).
  std::function<void()> sources_read;
};

struct CatalogSummary {
  uint64_t files = 0, directories = 0, skipped_names = 0;
  uint64_t unreadable_dirs = 0;          // 0 from offhostd, whose API does not carry it
  std::vector<std::string> not_indexed;  // "VOLUME: reason"
  uint64_t new_bytes = 0;  // catalog trees added to the index (unchanged folders add none)
  double seconds = 0;
};

struct BackupResult {
  storage::SnapshotRecord snapshot;
  double seconds = 0;
  double commit_seconds = 0;  // making chunks durable and publishing the snapshot
  CatalogSummary catalog;
};

Result<BackupResult> RunBackup(storage::Datastore& ds, const std::string& vm,
                               std::vector<BackupDisk>& disks, const BackupOptions& options);
// The same into a snapshot of `vm` already begun (Datastore::BeginSnapshot): a VM backup
// begins it while the hypervisor takes the point-in-time view.
Result<BackupResult> RunBackup(storage::Datastore& ds, const std::string& vm,
                               std::unique_ptr<storage::SnapshotWriter> writer,
                               std::vector<BackupDisk>& disks, const BackupOptions& options);

}  // namespace offhost::proxy
