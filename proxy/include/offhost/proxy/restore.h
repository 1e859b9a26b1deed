// Restore of a whole disk from a snapshot to a file or any writable BlockDevice (NBD).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "offhost/common/block_device.h"
#include "offhost/storage/datastore.h"

namespace offhost::proxy {

struct RestoreCounters {
  std::atomic<uint64_t> total_bytes{0};
  std::atomic<uint64_t> done_bytes{0};
  std::atomic<uint64_t> bytes_written{0};
};

struct RestoreOptions {
  int threads = 0;  // 0 = one per core
  // The target already reads as zeroes (a new sparse file): zero and unallocated ranges are
  // skipped, so they stay holes.
  bool target_is_zeroed = false;
  RestoreCounters* counters = nullptr;
  const std::atomic<bool>* cancel = nullptr;  // optional; set to stop the restore
};

struct RestoreResult {
  uint64_t bytes_written = 0;
  uint64_t chunks = 0;
  double seconds = 0;
};

// Every chunk is proven against its SHA-256 before it is written; a damaged or missing chunk
// stops the restore with an error naming the chunk and the disk offset.
Result<RestoreResult> RestoreDisk(storage::Datastore& ds, const storage::SnapshotRecord& snap,
                                  const std::string& disk, BlockDevice& target,
                                  const RestoreOptions& options);

// A file as a restore target. The disk is written to PATH.partial, a new sparse file, and
// renamed to PATH only by Publish(), so an interrupted restore never leaves a file under the
// target's name that looks complete. A block device is written in place.
class FileRestoreTarget {
 public:
  // Refuses an existing PATH unless `overwrite`.
  static Result<std::unique_ptr<FileRestoreTarget>> Create(const std::string& path,
                                                           uint64_t size, bool overwrite);
  ~FileRestoreTarget();  // removes PATH.partial unless published

  BlockDevice& device() { return *device_; }
  bool zeroed() const { return zeroed_; }  // reads as zeroes before the restore writes
  Status Publish();                          // fsync, then rename PATH.partial to PATH

 private:
  FileRestoreTarget() = default;
  std::string path_, partial_;
  std::unique_ptr<BlockDevice> device_;
  bool zeroed_ = false;
  bool published_ = false;
};

}  // namespace offhost::proxy
