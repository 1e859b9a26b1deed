// Datastore: a directory holding chunks (ChunkStore) and a RocksDB index of snapshots and
// their per-disk manifests. Layout and keys: docs/datastore-format.md.
//
// Concurrency: any number of processes may back up into one datastore at once. Chunks are
// written straight to the chunk store; a snapshot's manifest is staged in DIR/tmp and its
// metadata enters the index only at Commit, in one synced RocksDB write — so readers never
// see a half snapshot, and a backup killed at any moment leaves only unreferenced chunks and
// a stale staging directory, both cleaned up later.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "offhost/common/status.h"
#include "offhost/storage/catalog.h"
#include "offhost/storage/chunk_store.h"
#include "offhost/storage/chunker.h"
#include "offhost/storage/manifest.h"

namespace offhost::storage {

struct DatastoreConfig {
  uint32_t chunk_size = 4u * 1024 * 1024;  // bytes, power of two; fixed at init
  int zstd_level = 1;                      // 1 = fastest; fixed at init
  std::string chunker = "fixed";
  std::string uuid;     // set by Init
  int64_t created = 0;  // unix seconds, set by Init
  // Datastore format version (docs/datastore-format.md): 2 since manifest segment format 2.
  // A version-1 datastore is marked 2 by its first backup with this offhost.
  int version = kDatastoreVersion;
  static constexpr int kDatastoreVersion = 2;
};

struct DiskRecord {
  std::string name;
  std::string source;  // where it was read from (credentials masked)
  uint64_t size = 0;
  uint64_t chunks = 0;      // chunk entries in the manifest
  uint64_t new_chunks = 0;  // chunks this backup added to the store
  uint64_t bytes_read = 0;  // bytes read from the source
  uint64_t new_bytes = 0;   // encoded bytes this backup added to the store
  uint64_t zero_bytes = 0;  // allocated zeroes, not stored
  uint64_t unallocated_bytes = 0;
  bool incremental = false;   // unchanged ranges were taken from the previous snapshot
  std::string full_reason;    // why a full backup when an incremental was not possible
  uint64_t dirty_bytes = 0;   // bytes the changed-block map marked as changed
  uint64_t reused_bytes = 0;  // bytes taken unchanged from the previous snapshot
  std::string identity;       // image/volume behind the disk, when the driver knows it
};

// What the snapshot driver knew about the VM and how consistent the view was.
struct SnapshotMeta {
  std::string vm_uuid;
  std::string driver;                 // "nbd", "libvirt", "qemu", ...
  std::string consistency = "crash";  // "crash" or "application"
  std::string consistency_reason;     // e.g. why application consistency was not reached
  std::string checkpoint;             // changed-block checkpoint taken with this view
  std::string parent;                 // snapshot id the incremental disks are relative to
  std::string vm_config;              // the hypervisor's VM definition (domain XML, ...)
};

struct SnapshotRecord {
  std::string vm;
  std::string id;  // UTC time "2026-11-25T01:30:49Z", unique per VM
  int64_t started = 0;
  int64_t finished = 0;
  std::vector<DiskRecord> disks;
  SnapshotMeta meta;  // meta.vm_config is not kept here; see Datastore::GetVmConfig

  uint64_t logical_bytes() const;
  uint64_t bytes_read() const;
  uint64_t new_bytes() const;
};

// Names of VMs and disks: 1-128 of [A-Za-z0-9._-], not starting with '.' or '-'.
Status ValidateName(const std::string& what, const std::string& name);

class SnapshotWriter;
class Index;

// Reads one disk's manifest in disk order, one segment in memory at a time.
class ManifestReader {
 public:
  ~ManifestReader();
  // The next entry, or false at the end — after checking the entries covered the whole disk.
  Result<bool> Next(ManifestEntry* entry);

 private:
  friend class Datastore;
  struct Impl;
  explicit ManifestReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Datastore {
 public:
  // Creates a datastore in `dir` (which must be missing or empty).
  static Status Init(const std::string& dir, DatastoreConfig config);
  // Opens an existing datastore; `for_writing` also checks that this user may write to it.
  static Result<std::unique_ptr<Datastore>> Open(const std::string& dir, bool for_writing);

  ~Datastore();

  const std::string& dir() const { return dir_; }
  const DatastoreConfig& config() const { return config_; }
  ChunkStore& chunks() { return *chunks_; }
  const Chunker& chunker() const { return *chunker_; }

  // Committed snapshots, oldest first; all VMs when `vm` is empty.
  Result<std::vector<SnapshotRecord>> ListSnapshots(const std::string& vm = "");
  // `id` may be "latest".
  Result<SnapshotRecord> FindSnapshot(const std::string& vm, const std::string& id);
  // The VM configuration stored with a snapshot (empty when the driver had none).
  Result<std::string> GetVmConfig(const SnapshotRecord& snap);
  // One disk's manifest, in order.
  Result<std::unique_ptr<ManifestReader>> OpenManifest(const SnapshotRecord& snap,
                                                       const std::string& disk);
  // Streams one disk's manifest in order.
  Status ForEachManifestEntry(const SnapshotRecord& snap, const std::string& disk,
                              const std::function<Status(const ManifestEntry&)>& fn);

  // Reads the file catalogs of snapshots (docs/catalog-format.md).
  Result<std::unique_ptr<CatalogReader>> OpenCatalog();

  // Removes snapshots from the index in one synced write: their records, manifests, stored VM
  // configurations and catalogs. Their chunks and catalog trees stay until garbage collection
  // (other snapshots may use them). A snapshot already gone is skipped. A snapshot a restore,
  // mount or export is reading (SnapshotReadLease) is kept: those are returned.
  Result<std::vector<SnapshotRecord>> DeleteSnapshots(const std::vector<SnapshotRecord>& snapshots);

  // Starts a new snapshot of `vm`, invisible until SnapshotWriter::Commit. Staging left by
  // backups whose process is gone is removed first, under the same open of the index.
  Result<std::unique_ptr<SnapshotWriter>> BeginSnapshot(const std::string& vm);

 private:
  friend class SnapshotWriter;
  Datastore(std::string dir, DatastoreConfig config);
  Status MarkCurrentVersion() const;

  std::string dir_;
  DatastoreConfig config_;
  std::unique_ptr<ChunkStore> chunks_;
  std::unique_ptr<Chunker> chunker_;
};

class DiskManifestWriter;

class SnapshotWriter {
 public:
  ~SnapshotWriter();  // aborts (removes staging) unless committed
  const std::string& vm() const { return record_.vm; }
  const std::string& id() const { return record_.id; }
  void SetMeta(SnapshotMeta meta) { record_.meta = std::move(meta); }

  // Adds a disk; entries are then added in order through the returned writer.
  Result<DiskManifestWriter*> AddDisk(const std::string& name, const std::string& source,
                                      uint64_t size);
  // Stages one directory of the snapshot's file catalog and returns its id. A directory
  // already stored (by this or an earlier snapshot) is not stored again.
  Result<TreeId> AddCatalogTree(std::vector<CatalogEntry> entries);
  // The catalog's volumes and their root trees, published with the snapshot.
  void SetCatalog(CatalogRecord catalog) { catalog_ = std::move(catalog); }
  // Bytes of catalog trees this snapshot adds to the index (trees new to the datastore).
  uint64_t new_catalog_bytes() const { return new_catalog_bytes_; }

  // Makes every chunk durable, then publishes the snapshot, its manifests and its catalog in
  // one synced RocksDB write. Every disk must be finished.
  Result<SnapshotRecord> Commit();

 private:
  friend class Datastore;
  SnapshotWriter(Datastore* ds, SnapshotRecord record, std::string staging_dir);
  void Abort();

  Datastore* ds_;
  SnapshotRecord record_;
  std::string staging_dir_;
  std::vector<std::unique_ptr<DiskManifestWriter>> disks_;
  bool done_ = false;
  int trees_fd_ = -1;                    // staging file of catalog trees
  std::unique_ptr<Index> stored_trees_;  // the committed index, to skip trees it has
  std::unordered_set<TreeId, ChunkIdHash> staged_trees_;
  std::optional<CatalogRecord> catalog_;
  uint64_t new_catalog_bytes_ = 0;
};

class DiskManifestWriter {
 public:
  ~DiskManifestWriter();
  Status Add(const ManifestEntry& e) { return builder_.Add(e); }
  // Ends the disk; fails unless the entries describe exactly the disk's size.
  Status Finish(const DiskRecord& stats);
  bool finished() const { return finished_; }

 private:
  friend class SnapshotWriter;
  DiskManifestWriter(std::string name, std::string path, uint64_t size);
  Status WriteSegment(uint32_t index, const std::string& segment);

  std::string name_;
  std::string path_;  // staging file: (u32 index, u32 length, bytes)*
  uint64_t size_;
  int fd_ = -1;
  ManifestBuilder builder_;
  DiskRecord record_;
  bool finished_ = false;
};

}  // namespace offhost::storage
