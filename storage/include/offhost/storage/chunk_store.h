// ChunkStore: where encoded chunks live, addressed by ChunkId. Content addressing makes every
// write idempotent: writing the same chunk twice, from two backups at once, is harmless.
//
// Implementations: a local directory now (OpenLocalChunkStore); an object store later.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "offhost/common/status.h"
#include "offhost/storage/chunk_id.h"

namespace offhost::storage {

class ChunkStore {
 public:
  virtual ~ChunkStore() = default;

  virtual std::string description() const = 0;
  // True when the chunk is present, or was Put() by this store and is made durable by the next
  // Sync() (until then, only this store sees it).
  virtual Result<bool> Contains(const ChunkId& id) = 0;
  // Existence only, for a chunk a committed snapshot references (hence already durable): no
  // directory is queued for the next Sync().
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
};

// Chunks as files: DIR/<first 4 hex digits>/<64 hex digits>. Each is written to a temporary
// sibling; batches are made durable with parallel fsync()s and then renamed into place; Sync() also
// fsyncs the directories that changed.
Result<std::unique_ptr<ChunkStore>> OpenLocalChunkStore(const std::string& dir);

}  // namespace offhost::storage
