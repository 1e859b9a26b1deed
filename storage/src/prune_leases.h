// The prune's side of the read leases (read_lease.h): only Datastore::DeleteSnapshots takes
// them, after it has checked the names and ids of the snapshots it removes.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "offhost/storage/read_lease.h"

namespace offhost::storage {

// For a prune: exclusive leases on the snapshots no reader holds, kept until it is destroyed
// (after the snapshots are gone from the index: their lease files are removed then).
class SnapshotPruneLeases {
 public:
  // Leases every snapshot of `snaps` that no reader holds; the others go to `in_use`. The
  // snapshots' VM names must be valid (ValidateName): they name the lease files.
  static Result<SnapshotPruneLeases> Take(const std::string& datastore_dir,
                                          const std::vector<SnapshotRecord>& snaps,
                                          std::vector<SnapshotRecord>* free,
                                          std::vector<SnapshotRecord>* in_use);
  SnapshotPruneLeases(SnapshotPruneLeases&& other) noexcept;
  SnapshotPruneLeases& operator=(SnapshotPruneLeases&&) = delete;
  ~SnapshotPruneLeases();
  // The snapshots are gone: their lease files go too (a reader waiting on one finds the
  // snapshot gone once it gets it).
  void RemoveFiles();

 private:
  SnapshotPruneLeases() = default;
  std::vector<std::pair<std::string, int>> held_;  // lease file, fd with LOCK_EX
};

}  // namespace offhost::storage
