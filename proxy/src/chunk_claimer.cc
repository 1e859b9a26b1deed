#include "chunk_claimer.h"

#include <limits>

namespace offhost::proxy {

ChunkClaimer::ChunkClaimer(storage::ChunkStore& store,
                           std::unique_ptr<storage::ManifestReader> previous)
    : store_(store), previous_(std::move(previous)), thread_([this] { Run(); }) {}

ChunkClaimer::~ChunkClaimer() {
  stop_ = true;
  thread_.join();
}

void ChunkClaimer::Run() {
  Status st;
  storage::ManifestEntry e;
  while (!stop_) {
    auto more = previous_->Next(&e);
    if (!more.ok()) {
      st = more.status();
      break;
    }
    if (!*more) break;
    std::optional<bool> stored;
    if (e.kind == storage::ManifestEntryKind::kChunk) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stored_.count(e.chunk)) stored = false;  // not claimed yet: claim below, unlocked
    }
    if (stored) {
      auto claimed = store_.IsStored(e.chunk);
      if (!claimed.ok()) {
        st = claimed.status();
        break;
      }
      stored = *claimed;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (stored) stored_.emplace(e.chunk, *stored);
    claimed_to_ = e.offset + e.length;
    cv_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  finished_ = true;
  failure_ = st;
  cv_.notify_all();
}

Result<bool> ChunkClaimer::IsStored(const storage::ChunkId& id, uint64_t end) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return finished_ || claimed_to_ >= end; });
  if (!failure_.ok()) return failure_;
  auto it = stored_.find(id);
  if (it == stored_.end()) {
    return Status::Corruption("chunk " + id.ShortHex() +
                              " is not in the previous snapshot's manifest where it was read");
  }
  return it->second;
}

}  // namespace offhost::proxy
