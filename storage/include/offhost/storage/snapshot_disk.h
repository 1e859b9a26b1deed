// A disk of a stored snapshot as a read-only BlockDevice. A read fetches, proves (SHA-256)
// and decompresses only the chunks it touches, keeping the most recent ones decoded, so a
// file-system library can read a backup in place: one file is restored by reading only the
// chunks that hold it, however large the disk.
#pragma once

#include <memory>
#include <string>

#include "offhost/common/block_device.h"
#include "offhost/storage/datastore.h"

namespace offhost::storage {

struct SnapshotDiskOptions {
  size_t cached_chunks = 32;  // decoded chunks kept in memory (chunk size each)
};

Result<std::unique_ptr<BlockDevice>> OpenSnapshotDisk(Datastore& ds, const SnapshotRecord& snap,
                                                      const std::string& disk,
                                                      const SnapshotDiskOptions& options = {});

}  // namespace offhost::storage
