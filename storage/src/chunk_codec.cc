// Chunk file codec; layout in docs/datastore-format.md ("Chunk file").
#include "offhost/storage/chunk_codec.h"

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "aligned_buffer.h"
#include "little_endian.h"

namespace offhost::storage {
namespace {

constexpr char kMagic[4] = {'O', 'H', 'C', 'K'};
constexpr size_t kCrcOffset = 52;

uint32_t HeaderCrc(const char* header) {
  return static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(header), static_cast<uInt>(kCrcOffset)));
}

void WriteHeader(const ChunkId& id, ChunkCompression c, uint32_t raw, uint32_t stored, char* h) {
  std::memset(h, 0, kChunkHeaderSize);
  std::memcpy(h, kMagic, 4);
  PutLe<uint16_t>(h + 4, kChunkFormatVersion);
  PutLe<uint16_t>(h + 6, static_cast<uint16_t>(c));
  PutLe<uint32_t>(h + 8, raw);
  PutLe<uint32_t>(h + 12, stored);
  std::memcpy(h + 16, id.bytes.data(), 32);
  PutLe<uint32_t>(h + kCrcOffset, HeaderCrc(h));
}

// Incompressible data (media, encrypted or already compressed files) is common in VM disks;
// eight 8 KiB samples spread over the chunk tell it apart for a fraction of compressing the
// whole chunk. Eight, not fewer, because a chunk may be a pack of an incremental's changed runs
// of different kinds (docs/chunking.md): one compressible sample is enough to try.
bool LooksIncompressible(ZSTD_CCtx* cctx, std::span<const char> data) {
  constexpr size_t kSample = 8 * 1024;
  constexpr size_t kSamples = 8;
  if (data.size() < 16 * kSample) return false;
  char out[ZSTD_COMPRESSBOUND(kSample)];
  const size_t step = (data.size() - kSample) / (kSamples - 1);
  for (size_t i = 0; i < kSamples; ++i) {
    size_t n = ZSTD_compressCCtx(cctx, out, sizeof out, data.data() + i * step, kSample, 1);
    if (ZSTD_isError(n) || n < kSample - kSample / 16) return false;
  }
  return true;
}

Status OutOfMemory(uint32_t raw) {
  return Status::IOError("out of memory for encoding a " + std::to_string(raw) + "-byte chunk");
}

}  // namespace

ChunkEncoder::ChunkEncoder(int zstd_level)
    : cctx_(ZSTD_createCCtx()), level_(zstd_level), out_(std::make_unique<AlignedBuffer>()) {}

ChunkEncoder::~ChunkEncoder() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(cctx_)); }

Result<std::span<const char>> ChunkEncoder::Encode(const ChunkId& id, std::span<const char> data) {
  return EncodeInto(id, data, nullptr);
}

Result<std::span<const char>> ChunkEncoder::EncodeInPlace(const ChunkId& id, std::span<char> data) {
  char* header = data.data() - kChunkHeaderSize;
  const bool aligned = reinterpret_cast<uintptr_t>(header) % kDirectAlign == 0;
  return EncodeInto(id, data, aligned ? header : nullptr);
}

Result<std::span<const char>> ChunkEncoder::EncodeInto(const ChunkId& id,
                                                       std::span<const char> data,
                                                       char* header_in_place) {
  if (data.empty() || data.size() > kMaxChunkSize) {
    return Status::InvalidArgument("chunk of " + std::to_string(data.size()) +
                                   " bytes is outside 1.." + std::to_string(kMaxChunkSize));
  }
  auto* cctx = static_cast<ZSTD_CCtx*>(cctx_);
  const auto raw = static_cast<uint32_t>(data.size());
  char* out = nullptr;
  auto stored_raw = [&]() -> Result<std::span<const char>> {
    if (header_in_place) {
      WriteHeader(id, ChunkCompression::kNone, raw, raw, header_in_place);
      return std::span<const char>(header_in_place, kChunkHeaderSize + data.size());
    }
    if (!out && !(out = out_->Reserve(kChunkHeaderSize + data.size()))) return OutOfMemory(raw);
    std::memcpy(out + kChunkHeaderSize, data.data(), data.size());
    WriteHeader(id, ChunkCompression::kNone, raw, raw, out);
    return std::span<const char>(out, kChunkHeaderSize + data.size());
  };
  if (LooksIncompressible(cctx, data)) return stored_raw();
  const size_t bound = ZSTD_compressBound(data.size());
  if (!(out = out_->Reserve(kChunkHeaderSize + bound))) {  // bound >= size: raw fits too
    return OutOfMemory(raw);
  }
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level_);
  // The frame's XXH64 content checksum lets verify reject a damaged payload before hashing.
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  size_t n = ZSTD_compress2(cctx, out + kChunkHeaderSize, bound, data.data(), data.size());
  if (ZSTD_isError(n)) {
    return Status::IOError(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  }
  if (n + n / 32 >= data.size()) return stored_raw();  // not worth a decompression per read
  WriteHeader(id, ChunkCompression::kZstd, raw, static_cast<uint32_t>(n), out);
  return std::span<const char>(out, kChunkHeaderSize + n);
}

Result<ChunkHeader> DecodeChunkHeader(std::span<const char> file) {
  return DecodeChunkHeaderOnly(file.first(std::min(file.size(), kChunkHeaderSize)), file.size());
}

Result<ChunkHeader> DecodeChunkHeaderOnly(std::span<const char> header, uint64_t file_size) {
  if (header.size() < kChunkHeaderSize) {
    return Status::Corruption("chunk file is " + std::to_string(file_size) +
                              " bytes, shorter than its " + std::to_string(kChunkHeaderSize) +
                              "-byte header");
  }
  const char* h = header.data();
  if (std::memcmp(h, kMagic, 4) != 0) return Status::Corruption("bad chunk magic");
  if (GetLe<uint32_t>(h + kCrcOffset) != HeaderCrc(h)) {
    return Status::Corruption("chunk header checksum mismatch");
  }
  ChunkHeader hdr;
  hdr.version = GetLe<uint16_t>(h + 4);
  if (hdr.version != kChunkFormatVersion) {
    return Status::NotSupported("chunk format version " + std::to_string(hdr.version) +
                                " is newer than this offhost understands (" +
                                std::to_string(kChunkFormatVersion) + "); upgrade offhost");
  }
  uint16_t c = GetLe<uint16_t>(h + 6);
  if (c > static_cast<uint16_t>(ChunkCompression::kZstd)) {
    return Status::Corruption("unknown chunk compression " + std::to_string(c));
  }
  hdr.compression = static_cast<ChunkCompression>(c);
  hdr.raw_size = GetLe<uint32_t>(h + 8);
  hdr.stored_size = GetLe<uint32_t>(h + 12);
  std::memcpy(hdr.id.bytes.data(), h + 16, 32);
  if (hdr.raw_size == 0 || hdr.raw_size > kMaxChunkSize) {
    return Status::Corruption("chunk raw size " + std::to_string(hdr.raw_size) + " out of range");
  }
  if (file_size != kChunkHeaderSize + hdr.stored_size) {
    return Status::Corruption(
        "chunk file is " + std::to_string(file_size) + " bytes but its header says " +
        std::to_string(kChunkHeaderSize + hdr.stored_size) + " (truncated or extended)");
  }
  return hdr;
}

Status DecodeChunk(const ChunkId& expected, std::span<const char> file, std::string* out) {
  OFFHOST_ASSIGN_OR_RETURN(ChunkHeader hdr, DecodeChunkHeader(file));
  if (hdr.id != expected) {
    return Status::Corruption("chunk header names chunk " + hdr.id.ShortHex() + " instead of " +
                              expected.ShortHex());
  }
  auto payload = file.subspan(kChunkHeaderSize);
  out->resize(hdr.raw_size);
  if (hdr.compression == ChunkCompression::kNone) {
    if (hdr.stored_size != hdr.raw_size) {
      return Status::Corruption("uncompressed chunk with stored size != raw size");
    }
    std::memcpy(out->data(), payload.data(), payload.size());
  } else {
    size_t n = ZSTD_decompress(out->data(), out->size(), payload.data(), payload.size());
    if (ZSTD_isError(n)) {
      return Status::Corruption(std::string("zstd payload does not decode: ") +
                                ZSTD_getErrorName(n));
    }
    if (n != hdr.raw_size) {
      return Status::Corruption("zstd payload decodes to " + std::to_string(n) +
                                " bytes, header says " + std::to_string(hdr.raw_size));
    }
  }
  if (ChunkId::Of(*out) != expected) {
    return Status::Corruption("SHA-256 of the decoded data does not match the chunk id");
  }
  return Status::OK();
}

}  // namespace offhost::storage
