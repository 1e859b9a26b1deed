// Chunk file codec. The byte layout is specified in docs/datastore-format.md ("Chunk file").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "offhost/common/status.h"
#include "offhost/storage/chunk_id.h"

namespace offhost::storage {

inline constexpr uint32_t kChunkMagic = 0x4b434f48;  // "HOCK" read as little-endian bytes
inline constexpr uint16_t kChunkFormatVersion = 1;
inline constexpr size_t kChunkHeaderSize = 56;
inline constexpr uint32_t kMaxChunkSize = 64u * 1024 * 1024;
// Chunk files are written with direct I/O in blocks of this size; EncodeInPlace() wants the
// header room in front of its data to start on such a boundary.
inline constexpr size_t kDirectAlign = 4096;

enum class ChunkCompression : uint16_t { kNone = 0, kZstd = 1 };

class AlignedBuffer;

// Per-thread compression state and output buffer; reuse one per worker thread.
class ChunkEncoder {
 public:
  explicit ChunkEncoder(int zstd_level = 1);
  ~ChunkEncoder();
  ChunkEncoder(const ChunkEncoder&) = delete;
  ChunkEncoder& operator=(const ChunkEncoder&) = delete;

  // Encodes `data` (whose SHA-256 is `id`) into a chunk file's bytes: header + zstd frame, or
  // header + raw bytes when compression does not save at least 1/32 of the size. The bytes
  // stay in the encoder until its next call. They start on a 4 KiB boundary, so a chunk store
  // writes them with direct I/O without copying them first.
  Result<std::span<const char>> Encode(const ChunkId& id, std::span<const char> data);
  // The same, for data whose kChunkHeaderSize bytes in front are the caller's to give up and
  // start on a 4 KiB boundary: data that is stored uncompressed gets its header written there
  // and is neither copied nor given memory of its own. Only alignment is checked: those bytes
  // are overwritten whenever data-kChunkHeaderSize is aligned, so pass only data laid out for
  // it (a backup's pool buffers); otherwise data is copied as by Encode().
  Result<std::span<const char>> EncodeInPlace(const ChunkId& id, std::span<char> data);

 private:
  Result<std::span<const char>> EncodeInto(const ChunkId& id, std::span<const char> data,
                                           char* header_in_place);

  void* cctx_;
  int level_;
  std::unique_ptr<AlignedBuffer> out_;
};

struct ChunkHeader {
  uint16_t version = 0;
  ChunkCompression compression = ChunkCompression::kNone;
  uint32_t raw_size = 0;
  uint32_t stored_size = 0;  // payload bytes after the header
  ChunkId id;
};

// Parses and checks the header (magic, version, sizes, header CRC).
Result<ChunkHeader> DecodeChunkHeader(std::span<const char> file);
// The same checks from the header alone (the file's first kChunkHeaderSize bytes) and the
// file's size, without reading the payload: for space accounting.
Result<ChunkHeader> DecodeChunkHeaderOnly(std::span<const char> header, uint64_t file_size);

// Decodes a whole chunk file and proves it is the chunk `expected`: header checks, zstd frame
// checksum, and SHA-256 of the decoded bytes. Errors are kCorruption and say what failed.
Status DecodeChunk(const ChunkId& expected, std::span<const char> file, std::string* out);

}  // namespace offhost::storage
