// Snapshot manifest of one disk: ordered, contiguous (offset, length) → (a slice of) a chunk |
// zero | unallocated. A restore needs only the manifest and the chunks. Byte layout in
// docs/datastore-format.md ("Manifest segment").
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "offhost/common/status.h"
#include "offhost/storage/chunk_id.h"

namespace offhost::storage {

enum class ManifestEntryKind : uint8_t {
  kChunk = 0,        // bytes are chunk `chunk` from byte `chunk_offset` on
  kZero = 1,         // allocated on the source, all zeroes
  kUnallocated = 2,  // a hole on the source (reads as zeroes)
};

struct ManifestEntry {
  uint64_t offset = 0;
  uint64_t length = 0;
  ManifestEntryKind kind = ManifestEntryKind::kUnallocated;
  ChunkId chunk;              // only for kChunk
  uint32_t chunk_offset = 0;  // only for kChunk: where in the chunk the entry's bytes start

  bool operator==(const ManifestEntry&) const = default;
};

// Entries per RocksDB value; 4096 entries of 4 MiB chunks describe 16 GiB.
inline constexpr size_t kManifestSegmentEntries = 4096;

// Encodes `entries` as one format-2 segment (each chunk id stored once, lengths as varints).
// `entries` must be non-empty, contiguous and have length > 0 (ManifestBuilder checks that);
// entries are written as given, not merged.
std::string EncodeManifestSegment(std::span<const ManifestEntry> entries);
// Appends `e` in format 1, which offhost wrote before format 2 (one fixed-size record per
// entry). Production code writes format 2; tests and the fuzzer use this to make old segments.
void AppendManifestEntryV1(const ManifestEntry& e, std::string* segment);
// Decodes a segment of either format, checking that entries are well formed and contiguous
// from the first; damage is kCorruption naming what and where.
Result<std::vector<ManifestEntry>> DecodeManifestSegment(std::span<const char> segment);

// Entries name whole chunks, or slices of chunks when an incremental backup stored only the
// changed part of a chunk's range (docs/chunking.md, "Incremental patches").
inline constexpr uint64_t kMaxChunkBytes = 64ull << 20;

// The part of `e` that lies in [offset, offset+length), which must overlap it.
ManifestEntry ClipManifestEntry(const ManifestEntry& e, uint64_t offset, uint64_t length);

// Builds a manifest entry by entry, merging adjacent zero / unallocated runs and adjacent
// slices of one chunk, and checking
// that entries are contiguous. Full segments are handed to `sink` as they fill up, so memory
// does not grow with the disk.
class ManifestBuilder {
 public:
  using SegmentSink = std::function<Status(uint32_t index, std::string segment)>;
  explicit ManifestBuilder(SegmentSink sink) : sink_(std::move(sink)) {}

  Status Add(const ManifestEntry& e);
  // Flushes the last segment; returns the number of bytes described.
  Result<uint64_t> Finish();

 private:
  Status FlushPending();
  Status EmitSegment();

  SegmentSink sink_;
  bool have_pending_ = false;
  ManifestEntry pending_;
  uint64_t next_offset_ = 0;
  std::vector<ManifestEntry> segment_;  // at most kManifestSegmentEntries, encoded when full
  uint32_t segment_index_ = 0;
};

}  // namespace offhost::storage
