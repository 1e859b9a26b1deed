// ChunkStore: where encoded chunks live, addressed by ChunkId. Content addressing makes every
// write idempotent: writing the same chunk twice, from two backups at once, is harmless.
//
// Implementations: a local directory now (OpenLocalChunkStore); an object store later.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "offhost/common/status.h"
#include "offhost/storage/chunk_id.h"

namespace offhost::storage {

// Garbage collection's sweep over a chunk store (docs/gc.md).
struct SweepOptions {
  // Chunk files last claimed (written, or found by Contains/IsStored) at or after this time,
  // unix nanoseconds, are kept: a running backup may use them.
  int64_t cutoff_ns = 0;
  // Whether a committed snapshot uses the chunk; such chunks are kept. Called from several
  // threads at once.
  std::function<bool(const ChunkId&)> referenced;
  bool dry_run = false;  // count only
  // Called with (directories done, directories total) now and then.
  std::function<void(uint64_t, uint64_t)> progress;
  // Test hook: called under the directory's lock just before a chunk file is deleted (from
  // any of the sweep's threads).
  std::function<void(const ChunkId&)> before_delete;
  // Directories swept at once: deletes mostly wait for the disk.
  int threads = 8;
  // Asked before each directory; true ends the sweep early with Cancelled (what was removed
  // stays removed: each delete is of a chunk nothing uses).
  std::function<bool()> stop;
};

struct SweepStats {
  uint64_t chunks = 0;      // chunk files seen
  uint64_t referenced = 0;  // kept: a committed snapshot uses them
  uint64_t recent = 0;      // kept: unreferenced but claimed after the cut-off
  uint64_t recent_bytes = 0;
  uint64_t removed = 0;  // unreferenced chunk files deleted (dry run: would be)
  uint64_t removed_bytes = 0;
  uint64_t temporary_removed = 0;  // temporary files of writers gone before the cut-off
  uint64_t temporary_bytes = 0;
};

class ChunkStore {
 public:
  virtual ~ChunkStore() = default;

  virtual std::string description() const = 0;
  // True when the chunk is present, or was Put() by this store and is made durable by the next
  // Sync() (until then, only this store sees it). A present chunk is claimed: its file's time
  // is set to now, which keeps garbage collection off it while this backup runs (docs/gc.md).
  virtual Result<bool> Contains(const ChunkId& id) = 0;
  // Existence only, for a chunk a committed snapshot references (hence already durable): no
  // directory is queued for the next Sync(). Claims the chunk like Contains: the snapshot
  // naming it may be pruned meanwhile.
  virtual Result<bool> IsStored(const ChunkId& id) = 0;
  // Stores an encoded chunk. Returns true if this call wrote it, false if it was already there.
  // The chunk is durable, and visible to other processes, once Sync() has returned; a store
  // destroyed before that drops it.
  virtual Result<bool> Put(const ChunkId& id, std::span<const char> encoded) = 0;
  // Makes every Put() that returned so far durable.
  virtual Status Sync() = 0;
  virtual Result<std::string> Get(const ChunkId& id) = 0;
  // Where a chunk lives, for messages ("chunks/3fa2/3fa2…").
  virtual std::string Locate(const ChunkId& id) const = 0;
  // Moves a chunk proven damaged out of the way (kept as evidence, no longer listed), so that
  // the next backup that meets the same data stores it again, repairing every snapshot that
  // uses it. Returns where it went.
  virtual Result<std::string> Quarantine(const ChunkId& id) = 0;
  // Calls fn for every stored chunk. Stops and returns the callback's error if it fails.
  virtual Status ForEach(const std::function<Status(const ChunkId&)>& fn) = 0;
  // Garbage collection's sweep: deletes every chunk file that is not referenced and was last
  // claimed before the cut-off, each check and delete under the lock of the chunk's directory
  // that Contains/IsStored take to claim a chunk (docs/gc.md).
  virtual Result<SweepStats> Sweep(const SweepOptions& options) = 0;
};

// Chunks as files: DIR/<first 4 hex digits>/<64 hex digits>. Each is written to a temporary
// sibling; batches are made durable with parallel fsync()s and then renamed into place; Sync() also
// fsyncs the directories that changed.
Result<std::unique_ptr<ChunkStore>> OpenLocalChunkStore(const std::string& dir);

}  // namespace offhost::storage
