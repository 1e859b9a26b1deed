// Readers of a snapshot (restores, mounts, exports, single-file restores) hold a lease on it,
// so that a prune meanwhile keeps the snapshot, and with it the chunks only it uses, instead of
// leaving the reader to fail half-way when a garbage collection removes them
// (docs/datastore-format.md, "Readers").
#pragma once

#include <memory>
#include <string>

#include "offhost/storage/datastore.h"

namespace offhost::storage {

class SnapshotReadLease {
 public:
  // Takes a shared lease on `snap`, then checks that the snapshot still exists (a prune may
  // have removed it just before): NotFound if not. A user who may not create the lease file
  // (a read-only account on the datastore) reads without one: a prune is then not held back.
  static Result<std::unique_ptr<SnapshotReadLease>> Take(Datastore& ds, const SnapshotRecord& snap);
  ~SnapshotReadLease();
  SnapshotReadLease(const SnapshotReadLease&) = delete;
  SnapshotReadLease& operator=(const SnapshotReadLease&) = delete;

 private:
  SnapshotReadLease(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;  // -1: no lease could be taken
};

// DIR/readers/<vm>@<id>
std::string ReadLeasePath(const std::string& datastore_dir, const SnapshotRecord& snap);

}  // namespace offhost::storage
