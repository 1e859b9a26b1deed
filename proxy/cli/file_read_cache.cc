#include "file_read_cache.h"

#include <algorithm>
#include <cstring>

namespace offhost::cli {

FileReadCache::FileReadCache(StreamFn stream, FileReadCacheOptions options)
    : stream_(std::move(stream)), options_(options) {
  options_.block_size = std::max<size_t>(options_.block_size, 4096);
  options_.budget = std::max(options_.budget, 2 * options_.block_size);
  options_.max_readahead =
      std::clamp(options_.max_readahead, options_.block_size, options_.budget / 2);
  options_.min_readahead =
      std::clamp(options_.min_readahead, options_.block_size, options_.max_readahead);
}

Result<size_t> FileReadCache::Read(const std::string& path, uint64_t size, uint64_t offset,
                                   std::span<char> out) {
  if (offset >= size || out.empty()) return size_t{0};
  const uint64_t bs = options_.block_size;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), size - offset));
  const uint64_t first = offset / bs, last = (offset + n - 1) / bs;

  auto& slot = by_path_[path];
  if (!slot) {
    slot = std::make_unique<FileState>();
    slot->path = path;
  }
  FileState& f = *slot;
  for (uint64_t i = first; i <= last; ++i) {
    if (f.blocks.count(i)) continue;
    Status st = Fill(f, size, i, last);
    if (!st.ok()) {
      if (f.blocks.empty()) by_path_.erase(path);
      return st;
    }
    break;  // Fill kept every missing block up to `last` (and beyond)
  }

  size_t done = 0;
  for (uint64_t i = first; i <= last; ++i) {
    auto it = f.blocks.find(i);
    if (it == f.blocks.end()) {
      return Status::IOError("read " + path + ": block " + std::to_string(i) +
                             " missing after a stream");
    }
    lru_.splice(lru_.begin(), lru_, it->second);  // most recently used
    const std::vector<char>& data = it->second->data;
    uint64_t block_start = i * bs;
    uint64_t from = std::max<uint64_t>(offset, block_start) - block_start;
    size_t len = static_cast<size_t>(std::min<uint64_t>(data.size() - from, n - done));
    std::memcpy(out.data() + done, data.data() + from, len);
    done += len;
  }
  Evict(&f, first, last);
  return done;
}

Status FileReadCache::Fill(FileState& f, uint64_t size, uint64_t first_missing,
                           uint64_t last_needed) {
  const uint64_t bs = options_.block_size;
  // Sequential: this stream continues where the previous one stopped.
  if (first_missing == f.last_fill_end) {
    f.readahead = std::clamp(f.readahead * 2, options_.min_readahead, options_.max_readahead);
  } else {
    f.readahead = options_.min_readahead;
  }
  const uint64_t blocks_in_file = (size + bs - 1) / bs;
  uint64_t end = std::max<uint64_t>(last_needed + 1, first_missing + f.readahead / bs);
  end = std::min(end, blocks_in_file);

  // The blocks to keep: every missing one in [first_missing, end).
  std::map<uint64_t, std::vector<char>> want;
  for (uint64_t i = first_missing; i < end; ++i) {
    if (f.blocks.count(i)) continue;
    uint64_t start = i * bs;
    want[i].resize(static_cast<size_t>(std::min<uint64_t>(bs, size - start)));
  }
  const uint64_t stop_at = std::min<uint64_t>(size, end * bs);
  const uint64_t keep_from = first_missing * bs;
  uint64_t kept = 0, expected = 0;
  for (const auto& [i, data] : want) expected += data.size();

  bool stopped = false;
  uint64_t streamed = 0;
  Status st = stream_(f.path, [&](uint64_t off, std::span<const char> bytes) -> Status {
    streamed += bytes.size();
    uint64_t pos = off;
    uint64_t piece_end = off + bytes.size();
    if (piece_end > keep_from) {
      pos = std::max(pos, keep_from);
      while (pos < piece_end && pos < stop_at) {
        uint64_t index = pos / bs;
        uint64_t block_end = std::min<uint64_t>((index + 1) * bs, size);
        uint64_t len = std::min({block_end, piece_end, stop_at}) - pos;
        auto w = want.find(index);
        if (w != want.end()) {
          std::memcpy(w->second.data() + (pos - index * bs), bytes.data() + (pos - off), len);
          kept += len;
        }
        pos += len;
      }
    }
    if (piece_end >= stop_at) {
      stopped = true;
      return Status::Cancelled("read-ahead window filled");
    }
    return Status::OK();
  });
  ++stats_.streams;
  stats_.streamed_bytes += streamed;
  if (!st.ok() && !(stopped && st.code() == StatusCode::kCancelled)) return st;
  if (kept != expected) {
    return Status::IOError("read " + f.path + ": the file ended at " + std::to_string(streamed) +
                           " bytes, before the " + std::to_string(size) + " its entry gives");
  }
  for (auto& [i, data] : want) {
    stats_.cached_bytes += data.size();
    lru_.push_front(Block{&f, i, std::move(data)});
    f.blocks[i] = lru_.begin();
  }
  f.last_fill_end = end;
  return Status::OK();
}

// Drops least recently used blocks until the budget holds, never those of the read in progress.
void FileReadCache::Evict(const FileState* keep, uint64_t keep_first, uint64_t keep_last) {
  auto it = lru_.end();
  while (stats_.cached_bytes > options_.budget && it != lru_.begin()) {
    --it;
    if (it->file == keep && it->index >= keep_first && it->index <= keep_last) continue;
    stats_.cached_bytes -= it->data.size();
    FileState* f = it->file;
    f->blocks.erase(it->index);
    it = lru_.erase(it);
    if (f->blocks.empty() && f != keep) by_path_.erase(f->path);
  }
}

void FileReadCache::Forget(const std::string& path) {
  auto p = by_path_.find(path);
  if (p == by_path_.end()) return;
  for (auto& [i, it] : p->second->blocks) {
    stats_.cached_bytes -= it->data.size();
    lru_.erase(it);
  }
  by_path_.erase(p);
}

}  // namespace offhost::cli
