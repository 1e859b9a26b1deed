// Random-access reads of guest files for `offhost mount`, on top of GuestFiles::ReadFile, which
// can only stream a file from its first byte.
//
// A read that misses streams the file from its start, skips to the first missing block and
// keeps the blocks from there on up to a read-ahead window, then stops the stream. Blocks live
// in memory only, in one LRU shared by every file, bounded by `budget`: nothing is spilled to
// disk, so mounting a backup never needs scratch space. The window doubles while a file is read
// sequentially, so `cp` or `cmp` of a file restarts the stream rarely; still, reaching offset X
// costs reading X bytes of the file again, so reading a file much larger than the budget in
// full costs O(size² / window). A GuestFiles read at an offset (TSK can do it) would remove
// that cost; this class is the only place that would change.
//
// Not thread-safe: the FUSE loop of `offhost mount` is single-threaded (GuestFiles serializes
// every call anyway).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::cli {

struct FileReadCacheOptions {
  size_t block_size = 1u << 20;      // bytes per cached block; default 1 MiB
  size_t budget = 256u << 20;        // bytes of blocks kept for all files; default 256 MiB
  size_t min_readahead = 4u << 20;   // bytes kept by a stream after a random read; default 4 MiB
  size_t max_readahead = 64u << 20;  // sequential reads double the window up to this (at most
                                     // budget / 2); default 64 MiB
};

struct FileReadCacheStats {
  uint64_t streams = 0;         // ReadFile calls (cache misses)
  uint64_t streamed_bytes = 0;  // bytes those calls delivered, including skipped ones
  uint64_t cached_bytes = 0;    // bytes of blocks held now
};

class FileReadCache {
 public:
  // Streams a file from its start, in order, as (file offset, bytes), stopping early when the
  // sink returns an error: GuestFiles::ReadFile.
  using StreamFn = std::function<Status(
      const std::string& path, const std::function<Status(uint64_t, std::span<const char>)>& sink)>;

  explicit FileReadCache(StreamFn stream, FileReadCacheOptions options = {});
  FileReadCache(const FileReadCache&) = delete;
  FileReadCache& operator=(const FileReadCache&) = delete;

  // Reads up to out.size() bytes at `offset` of the regular file `path`, whose size is `size`
  // (from Stat). Returns the bytes read: fewer only at the end of the file, 0 past it.
  Result<size_t> Read(const std::string& path, uint64_t size, uint64_t offset, std::span<char> out);
  // Drops what is cached of `path` (its last open handle was closed).
  void Forget(const std::string& path);

  const FileReadCacheStats& stats() const { return stats_; }

 private:
  struct FileState;
  struct Block {
    FileState* file;
    uint64_t index;
    std::vector<char> data;
  };
  struct FileState {
    std::string path;
    std::map<uint64_t, std::list<Block>::iterator> blocks;  // by block index
    uint64_t last_fill_end = UINT64_MAX;  // block index after the last stream's last block
    size_t readahead = 0;                 // bytes the next stream keeps
  };

  Status Fill(FileState& f, uint64_t size, uint64_t first_missing, uint64_t last_needed);
  void Evict(const FileState* keep, uint64_t keep_first, uint64_t keep_last);

  StreamFn stream_;
  FileReadCacheOptions options_;
  std::list<Block> lru_;  // most recently used first
  std::unordered_map<std::string, std::unique_ptr<FileState>> by_path_;
  FileReadCacheStats stats_;
};

}  // namespace offhost::cli
