#include "offhost/storage/snapshot_disk.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>

#include "offhost/storage/chunk_codec.h"
#include "offhost/storage/read_lease.h"

namespace offhost::storage {
namespace {

class SnapshotDisk final : public BlockDevice {
 public:
  SnapshotDisk(Datastore& ds, std::unique_ptr<SnapshotReadLease> lease, std::string name,
               std::vector<ManifestEntry> entries, uint64_t size, size_t cached)
      : ds_(ds),
        name_(std::move(name)),
        entries_(std::move(entries)),
        lease_(std::move(lease)),
        size_(size),
        capacity_(std::max<size_t>(1, cached)) {}

  uint64_t size() const override { return size_; }
  std::string description() const override { return "backup " + name_; }

  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override {
    std::vector<Extent> out;
    uint64_t end = std::min(size_, offset + length);
    for (size_t i = Find(offset); i < entries_.size() && entries_[i].offset < end; ++i) {
      const ManifestEntry& e = entries_[i];
      uint64_t s = std::max(e.offset, offset), t = std::min(e.offset + e.length, end);
      ExtentType type = e.kind == ManifestEntryKind::kChunk  ? ExtentType::kData
                        : e.kind == ManifestEntryKind::kZero ? ExtentType::kZero
                                                             : ExtentType::kHole;
      if (!out.empty() && out.back().type == type) {
        out.back().length += t - s;
      } else {
        out.push_back({s, t - s, type});
      }
    }
    return out;
  }

  Status Read(std::span<const ReadRequest> requests) override {
    for (const auto& r : requests) {
      if (r.offset > size_ || r.buffer.size() > size_ - r.offset) {
        return Status::InvalidArgument("read of " + std::to_string(r.buffer.size()) + " bytes at " +
                                       std::to_string(r.offset) + " is beyond the end of " +
                                       description());
      }
      uint64_t pos = r.offset, end = r.offset + r.buffer.size();
      for (size_t i = Find(pos); pos < end; ++i) {
        const ManifestEntry& e = entries_[i];
        uint64_t n = std::min(end, e.offset + e.length) - pos;
        char* dst = r.buffer.data() + (pos - r.offset);
        if (e.kind == ManifestEntryKind::kChunk) {
          OFFHOST_RETURN_IF_ERROR(CopyFromChunk(e, pos - e.offset, dst, n));
        } else {
          std::memset(dst, 0, n);
        }
        pos += n;
      }
    }
    return Status::OK();
  }

 private:
  // Index of the entry containing `offset` (entries are contiguous from 0).
  size_t Find(uint64_t offset) const {
    auto it = std::upper_bound(entries_.begin(), entries_.end(), offset,
                               [](uint64_t o, const ManifestEntry& e) { return o < e.offset; });
    return it == entries_.begin() ? 0 : static_cast<size_t>(it - entries_.begin() - 1);
  }

  Status CopyFromChunk(const ManifestEntry& e, uint64_t within, char* dst, uint64_t n) {
    OFFHOST_ASSIGN_OR_RETURN(std::shared_ptr<const std::string> data, Decoded(e));
    if (data->size() < uint64_t{e.chunk_offset} + e.length) {
      return Status::Corruption("chunk " + e.chunk.Hex() + " holds " +
                                std::to_string(data->size()) + " bytes, but the manifest of " +
                                description() + " needs " +
                                std::to_string(uint64_t{e.chunk_offset} + e.length) +
                                " at offset " + std::to_string(e.offset));
    }
    std::memcpy(dst, data->data() + e.chunk_offset + within, n);
    return Status::OK();
  }

  // The chunk's decoded bytes, from the cache or loaded once: readers that miss the same chunk
  // at the same time (an NBD client's parallel requests into one chunk) wait for one decode
  // instead of each decoding it.
  Result<std::shared_ptr<const std::string>> Decoded(const ManifestEntry& e) {
    std::shared_ptr<Loading> loading;
    bool mine = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto it = cache_.find(e.chunk);
      if (it != cache_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.second);
        return it->second.first;
      }
      auto& slot = loading_[e.chunk];
      if (!slot) {
        slot = std::make_shared<Loading>();
        mine = true;
      }
      loading = slot;
      if (!mine) {
        loaded_.wait(lock, [&] { return loading->done; });
        if (!loading->status.ok()) return loading->status;
        return loading->data;
      }
    }
    auto data = Load(e);
    std::lock_guard<std::mutex> lock(mu_);
    loading->done = true;
    loading_.erase(e.chunk);
    loaded_.notify_all();
    if (!data.ok()) {
      loading->status = data.status();
      return data.status();
    }
    loading->data = *data;
    lru_.push_front(e.chunk);
    cache_[e.chunk] = {*data, lru_.begin()};
    if (cache_.size() > capacity_) {
      cache_.erase(lru_.back());
      lru_.pop_back();
    }
    return *data;
  }

  Result<std::shared_ptr<const std::string>> Load(const ManifestEntry& e) {
    auto file = ds_.chunks().Get(e.chunk);
    auto data = std::make_shared<std::string>();
    Status st = file.ok() ? DecodeChunk(e.chunk, *file, data.get()) : file.status();
    if (!st.ok()) {
      return Status::Corruption("chunk " + e.chunk.Hex() + " for offset " +
                                std::to_string(e.offset) + " of " + description() +
                                " is damaged: " + st.message() +
                                "; run 'offhost verify --datastore " + ds_.dir() + "'");
    }
    return std::shared_ptr<const std::string>(std::move(data));
  }

  Datastore& ds_;
  std::string name_;
  std::vector<ManifestEntry> entries_;
  std::unique_ptr<SnapshotReadLease> lease_;  // the snapshot stays while it is read
  uint64_t size_;
  size_t capacity_;
  struct Loading {
    bool done = false;
    Status status;
    std::shared_ptr<const std::string> data;
  };
  std::mutex mu_;
  std::condition_variable loaded_;
  std::unordered_map<ChunkId, std::shared_ptr<Loading>, ChunkIdHash> loading_;
  std::list<ChunkId> lru_;
  std::unordered_map<ChunkId,
                     std::pair<std::shared_ptr<const std::string>, std::list<ChunkId>::iterator>,
                     ChunkIdHash>
      cache_;
};

}  // namespace

Result<std::unique_ptr<BlockDevice>> OpenSnapshotDisk(Datastore& ds, const SnapshotRecord& snap,
                                                      const std::string& disk,
                                                      const SnapshotDiskOptions& options) {
  OFFHOST_ASSIGN_OR_RETURN(auto lease, SnapshotReadLease::Take(ds, snap));
  std::vector<ManifestEntry> entries;
  OFFHOST_RETURN_IF_ERROR(ds.ForEachManifestEntry(snap, disk, [&](const ManifestEntry& e) {
    entries.push_back(e);
    return Status::OK();
  }));
  uint64_t size = entries.empty() ? 0 : entries.back().offset + entries.back().length;
  return std::unique_ptr<BlockDevice>(
      new SnapshotDisk(ds, std::move(lease), snap.vm + "@" + snap.id + " disk " + disk,
                       std::move(entries), size, options.cached_chunks));
}

}  // namespace offhost::storage
