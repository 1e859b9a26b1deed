// The datastore's RocksDB index (private to storage/). Keys are listed in
// docs/datastore-format.md ("Index keys").
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offhost/common/status.h"
#include "offhost/storage/chunk_id.h"

namespace offhost::storage {

class Index {
 public:
  // Read-only opens take no lock: listing and restoring work while a backup commits.
  static Result<std::unique_ptr<Index>> OpenReadOnly(const std::string& dir);
  // Writers take RocksDB's lock, waiting for another process's commit to finish.
  static Result<std::unique_ptr<Index>> OpenWritable(const std::string& dir);
  static Status Create(const std::string& dir);

  rocksdb::DB* db() { return db_.get(); }
  Result<std::optional<std::string>> Get(const std::string& key);
  // Durable write of one batch.
  Status WriteSynced(rocksdb::WriteBatch* batch);

 private:
  Index(std::string dir, std::unique_ptr<rocksdb::DB> db)
      : dir_(std::move(dir)), db_(std::move(db)) {}
  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
};

// A backup whose marker (`r/` key) is in the index and whose process may still run.
struct RunningBackup {
  std::string key;  // r/<vm>/<snapshot>
  std::string host;
  int64_t pid = 0;
  int64_t started = 0;  // unix seconds
};

// The markers of backups that may still run: those of processes gone from this host are left
// out (their markers are removed by RemoveDeadBackups).
Result<std::vector<RunningBackup>> ListRunningBackups(Index& index, const std::string& dir);
// Removes the markers and staging directories of backups whose process is gone; the caller
// holds the index open for writing (its lock serialises this with other writers). `dir` is
// the datastore's directory.
Result<int> RemoveDeadBackups(Index& index, const std::string& dir);

Status FromRocks(const rocksdb::Status& s, const std::string& what);

// Key builders.
std::string SnapshotKey(const std::string& vm, const std::string& id);
std::string SnapshotPrefix(const std::string& vm);  // vm may be empty: every snapshot
std::string ConfigKey(const std::string& vm, const std::string& id);
std::string CatalogKey(const std::string& vm, const std::string& id);
std::string TreeKey(const ChunkId& id);
std::optional<ChunkId> TreeIdOfKey(const std::string& key);  // of a `t/` key
std::string RunningKey(const std::string& vm, const std::string& id);
std::string ManifestPrefix(const std::string& vm, const std::string& id, const std::string& disk);
std::string ManifestKey(const std::string& vm, const std::string& id, const std::string& disk,
                        uint32_t segment);

}  // namespace offhost::storage
