// Claims the previous snapshot's chunks ahead of the incremental backup that reuses them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "offhost/storage/chunk_store.h"
#include "offhost/storage/datastore.h"

namespace offhost::proxy {

// An incremental keeps most of its ranges as (slices of) the previous snapshot's chunks, and
// must claim each one before relying on it (garbage collection keeps claimed chunks,
// docs/gc.md). A claim is a directory lock and a utimensat, ~10 µs; an incremental of a
// 4 GiB disk checks about a thousand chunks, which took 10–15 ms in front of its reads. A
// thread of its own walks the previous manifest and claims each distinct chunk once, while
// the backup reads the changed ranges.
class ChunkClaimer {
 public:
  ChunkClaimer(storage::ChunkStore& store, std::unique_ptr<storage::ManifestReader> previous,
               uint64_t disk_size);
  ~ChunkClaimer();
  ChunkClaimer(const ChunkClaimer&) = delete;
  ChunkClaimer& operator=(const ChunkClaimer&) = delete;

  // Whether the chunk `id`, used by the previous snapshot before disk offset `end`, is still
  // stored (and now claimed). Waits until the claims have reached `end`.
  Result<bool> IsStored(const storage::ChunkId& id, uint64_t end);
  // A chunk found damaged and moved aside during this backup: ranges planned from now on
  // must not keep it.
  void MarkMissing(const storage::ChunkId& id);

 private:
  void Run();

  storage::ChunkStore& store_;
  std::unique_ptr<storage::ManifestReader> previous_;
  const uint64_t disk_size_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t claimed_to_ = 0;  // every chunk of the manifest before this offset is claimed
  bool finished_ = false;
  Status failure_;
  std::unordered_map<storage::ChunkId, bool, storage::ChunkIdHash> stored_;
  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace offhost::proxy
