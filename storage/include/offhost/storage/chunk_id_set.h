// ChunkIdSet: the mark set of garbage collection — which chunk ids committed snapshots use —
// compact enough for datastores of millions of chunks (docs/gc.md, "Mark").
//
// Only the first 8 bytes of each SHA-256 id are kept (8 bytes per chunk instead of 32 plus a
// hash table's overhead). Two different ids sharing a prefix make MayContain answer true for
// a chunk nobody uses: GC then keeps one unused chunk, which is safe; it never answers false
// for an id that was added. With a million ids, a given unused chunk is mistaken for a used
// one with probability ~5e-14.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "offhost/storage/chunk_id.h"

namespace offhost::storage {

class ChunkIdSet {
 public:
  // Adding is appending; duplicates (every snapshot names most chunks again) are squeezed out
  // whenever the list doubles, so memory stays near twice the distinct ids.
  void Add(const ChunkId& id) {
    prefixes_.push_back(Prefix(id));
    if (prefixes_.size() >= compact_at_) Compact();
  }
  // Call once after the last Add, before MayContain.
  void Seal() {
    Compact();
    prefixes_.shrink_to_fit();
  }
  bool MayContain(const ChunkId& id) const {
    return std::binary_search(prefixes_.begin(), prefixes_.end(), Prefix(id));
  }
  uint64_t size() const { return prefixes_.size(); }
  uint64_t memory_bytes() const { return prefixes_.capacity() * sizeof(uint64_t); }

 private:
  static uint64_t Prefix(const ChunkId& id) {
    uint64_t p;
    std::memcpy(&p, id.bytes.data(), sizeof p);
    return p;
  }
  void Compact() {
    std::sort(prefixes_.begin(), prefixes_.end());
    prefixes_.erase(std::unique(prefixes_.begin(), prefixes_.end()), prefixes_.end());
    compact_at_ = std::max<size_t>(kMinCompact, prefixes_.size() * 2);
  }

  static constexpr size_t kMinCompact = 1 << 16;
  std::vector<uint64_t> prefixes_;
  size_t compact_at_ = kMinCompact;
};

}  // namespace offhost::storage
