// Decoded chunks shared by the threads of one backup or restore, most recently used first.
// An incremental packs the changed runs of many neighbouring ranges into one chunk, so the
// same chunk is needed by many ranges near each other: decoding it (read, decompress, prove
// its SHA-256) once instead of once per range is what keeps restores and merges of
// fragmented ranges linear in the data they use.
#pragma once

#include <cstddef>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "offhost/common/status.h"
#include "offhost/storage/chunk_id.h"
#include "offhost/storage/chunk_store.h"

namespace offhost::proxy {

class DecodedChunkCache {
 public:
  // Keeps at least the most recent chunk, and others up to `keep_bytes` of decoded data.
  DecodedChunkCache(storage::ChunkStore& store, size_t keep_bytes)
      : store_(store), keep_bytes_(keep_bytes) {}

  // The chunk's proven bytes. On failure `*damaged` says whether the chunk is missing or its
  // bytes do not decode to its id (as opposed to an I/O error of the store).
  Result<std::shared_ptr<const std::string>> Get(const storage::ChunkId& id, bool* damaged);

 private:
  struct Entry {
    std::mutex mu;  // held while the chunk is decoded: a second reader waits for the first
    bool loaded = false;
    std::shared_ptr<const std::string> bytes;
  };
  using Lru = std::list<std::pair<storage::ChunkId, std::shared_ptr<Entry>>>;

  std::shared_ptr<Entry> Slot(const storage::ChunkId& id);
  void Account(const storage::ChunkId& id, size_t bytes);
  void Forget(const storage::ChunkId& id);

  storage::ChunkStore& store_;
  const size_t keep_bytes_;
  std::mutex mu_;
  Lru lru_;
  std::map<storage::ChunkId, Lru::iterator> where_;
  size_t bytes_ = 0;
};

}  // namespace offhost::proxy
