#include <algorithm>

#include "offhost/storage/chunk_codec.h"
#include "offhost/storage/chunker.h"

namespace offhost::storage {
namespace {

class FixedChunker final : public Chunker {
 public:
  explicit FixedChunker(uint32_t size) : size_(size) {}
  std::string name() const override { return "fixed"; }
  uint32_t max_chunk_size() const override { return size_; }
  ChunkRange ChunkAt(uint64_t offset, uint64_t disk_size) const override {
    uint64_t start = offset - offset % size_;
    uint64_t end = std::min<uint64_t>(start + size_, disk_size);
    return {start, static_cast<uint32_t>(end - start)};
  }

 private:
  uint32_t size_;
};

}  // namespace

Result<std::unique_ptr<Chunker>> MakeFixedChunker(uint32_t chunk_size) {
  bool pow2 = chunk_size != 0 && (chunk_size & (chunk_size - 1)) == 0;
  if (!pow2 || chunk_size < 64 * 1024 || chunk_size > kMaxChunkSize) {
    return Status::InvalidArgument("chunk size " + std::to_string(chunk_size) +
                                   " must be a power of two from 64 KiB to 64 MiB");
  }
  return std::unique_ptr<Chunker>(new FixedChunker(chunk_size));
}

}  // namespace offhost::storage
