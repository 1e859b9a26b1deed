// Chunker: how a disk is cut into chunks. Fixed-size aligned chunks now; the interface leaves
// room for content-defined chunking later without touching the pipeline.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "offhost/common/status.h"

namespace offhost::storage {

struct ChunkRange {
  uint64_t offset = 0;
  uint32_t length = 0;
};

class Chunker {
 public:
  virtual ~Chunker() = default;
  virtual std::string name() const = 0;
  // Largest chunk this chunker yields; the pipeline sizes its buffers from it.
  virtual uint32_t max_chunk_size() const = 0;
  // The chunk containing `offset` of a disk of `disk_size` bytes (offset < disk_size).
  virtual ChunkRange ChunkAt(uint64_t offset, uint64_t disk_size) const = 0;
};

// Chunks of `chunk_size` bytes aligned to multiples of it (the last one may be shorter).
// chunk_size must be a power of two between 64 KiB and 64 MiB.
Result<std::unique_ptr<Chunker>> MakeFixedChunker(uint32_t chunk_size);

}  // namespace offhost::storage
