#include "decoded_chunk_cache.h"

#include "offhost/storage/chunk_codec.h"

namespace offhost::proxy {

std::shared_ptr<DecodedChunkCache::Entry> DecodedChunkCache::Slot(const storage::ChunkId& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = where_.find(id);
  if (it != where_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return lru_.front().second;
  }
  lru_.emplace_front(id, std::make_shared<Entry>());
  where_[id] = lru_.begin();
  return lru_.front().second;
}

// Counts a newly decoded chunk and drops the least recently used ones beyond the budget (the
// most recent always stays; a reader holding an evicted chunk keeps its bytes alive).
void DecodedChunkCache::Account(const storage::ChunkId& id, size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  if (where_.count(id) == 0) return;  // forgotten meanwhile
  bytes_ += bytes;
  while (bytes_ > keep_bytes_ && lru_.size() > 1) {
    auto& [victim, entry] = lru_.back();
    std::unique_lock<std::mutex> busy(entry->mu, std::try_to_lock);
    if (!busy.owns_lock()) break;  // being decoded right now: it will be needed
    if (entry->bytes) bytes_ -= entry->bytes->size();
    busy.unlock();
    where_.erase(victim);
    lru_.pop_back();
  }
}

void DecodedChunkCache::Forget(const storage::ChunkId& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = where_.find(id);
  if (it == where_.end()) return;
  lru_.erase(it->second);
  where_.erase(it);
}

Result<std::shared_ptr<const std::string>> DecodedChunkCache::Get(const storage::ChunkId& id,
                                                                  bool* damaged) {
  *damaged = false;
  std::shared_ptr<Entry> entry = Slot(id);
  std::unique_lock<std::mutex> lock(entry->mu);
  if (entry->loaded) return entry->bytes;
  Status st;
  auto file = store_.Get(id);
  auto bytes = std::make_shared<std::string>();
  if (file.ok()) {
    st = storage::DecodeChunk(id, *file, bytes.get());
    *damaged = !st.ok();
  } else {
    st = file.status();
    *damaged = st.code() == StatusCode::kNotFound;
  }
  if (!st.ok()) {
    lock.unlock();
    Forget(id);  // not cached: the next reader tries again and gets its own error
    return st;
  }
  entry->bytes = std::move(bytes);
  entry->loaded = true;
  size_t size = entry->bytes->size();
  std::shared_ptr<const std::string> out = entry->bytes;
  lock.unlock();
  Account(id, size);
  return out;
}

}  // namespace offhost::proxy
