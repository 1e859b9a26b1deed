// Manifest segment codec; layout in docs/datastore-format.md ("Manifest segment").
#include "offhost/storage/manifest.h"

#include <algorithm>
#include <cstring>

#include "little_endian.h"

namespace offhost::storage {
namespace {

constexpr size_t kFixedPart = 1 + 8 + 8;
// On disk, a chunk entry that starts inside its chunk has its own kind (it carries one more
// field); in memory both are kChunk.
constexpr uint8_t kChunkSliceCode = 3;

bool Continues(const ManifestEntry& a, const ManifestEntry& b) {
  if (a.kind != b.kind) return false;
  if (a.kind != ManifestEntryKind::kChunk) return true;
  return a.chunk == b.chunk && uint64_t{a.chunk_offset} + a.length == b.chunk_offset;
}

}  // namespace

ManifestEntry ClipManifestEntry(const ManifestEntry& e, uint64_t offset, uint64_t length) {
  uint64_t s = std::max(e.offset, offset), t = std::min(e.offset + e.length, offset + length);
  ManifestEntry out = e;
  out.offset = s;
  out.length = t > s ? t - s : 0;
  if (e.kind == ManifestEntryKind::kChunk) {
    out.chunk_offset = static_cast<uint32_t>(e.chunk_offset + (s - e.offset));
  }
  return out;
}

void AppendManifestEntry(const ManifestEntry& e, std::string* segment) {
  bool slice = e.kind == ManifestEntryKind::kChunk && e.chunk_offset != 0;
  segment->push_back(static_cast<char>(slice ? kChunkSliceCode : static_cast<uint8_t>(e.kind)));
  AppendLe<uint64_t>(segment, e.offset);
  AppendLe<uint64_t>(segment, e.length);
  if (e.kind == ManifestEntryKind::kChunk) {
    segment->append(reinterpret_cast<const char*>(e.chunk.bytes.data()), e.chunk.bytes.size());
  }
  if (slice) AppendLe<uint32_t>(segment, e.chunk_offset);
}

Result<std::vector<ManifestEntry>> DecodeManifestSegment(std::span<const char> segment) {
  std::vector<ManifestEntry> out;
  size_t pos = 0;
  while (pos < segment.size()) {
    if (segment.size() - pos < kFixedPart) {
      return Status::Corruption("manifest segment ends inside an entry at byte " +
                                std::to_string(pos));
    }
    ManifestEntry e;
    auto kind = static_cast<uint8_t>(segment[pos]);
    if (kind > kChunkSliceCode) {
      return Status::Corruption("manifest entry at byte " + std::to_string(pos) +
                                " has unknown kind " + std::to_string(kind));
    }
    bool slice = kind == kChunkSliceCode;
    e.kind = slice ? ManifestEntryKind::kChunk : static_cast<ManifestEntryKind>(kind);
    e.offset = GetLe<uint64_t>(segment.data() + pos + 1);
    e.length = GetLe<uint64_t>(segment.data() + pos + 9);
    pos += kFixedPart;
    if (e.kind == ManifestEntryKind::kChunk) {
      if (segment.size() - pos < 32u + (slice ? 4u : 0u)) {
        return Status::Corruption("manifest entry truncated");
      }
      std::memcpy(e.chunk.bytes.data(), segment.data() + pos, 32);
      pos += 32;
      if (slice) {
        e.chunk_offset = GetLe<uint32_t>(segment.data() + pos);
        pos += 4;
        if (e.chunk_offset == 0) {  // kind 0 says that; one encoding per entry
          return Status::Corruption("manifest slice at disk offset " + std::to_string(e.offset) +
                                    " starts at chunk offset 0");
        }
      }
    }
    bool too_long = e.kind == ManifestEntryKind::kChunk &&
                    uint64_t{e.chunk_offset} + e.length > kMaxChunkBytes;
    if (e.length == 0 || e.offset + e.length < e.offset || too_long) {
      return Status::Corruption("manifest entry at disk offset " + std::to_string(e.offset) +
                                " has invalid length " + std::to_string(e.length));
    }
    if (!out.empty() && out.back().offset + out.back().length != e.offset) {
      return Status::Corruption("manifest entries are not contiguous at disk offset " +
                                std::to_string(e.offset));
    }
    out.push_back(e);
  }
  return out;
}

Status ManifestBuilder::Add(const ManifestEntry& e) {
  if (e.offset != next_offset_ || e.length == 0) {
    return Status::InvalidArgument("manifest entry at " + std::to_string(e.offset) + "+" +
                                   std::to_string(e.length) + " does not continue at " +
                                   std::to_string(next_offset_));
  }
  next_offset_ += e.length;
  if (have_pending_ && Continues(pending_, e)) {
    pending_.length += e.length;  // one entry for a run of zeroes, holes or one chunk's bytes
    return Status::OK();
  }
  OFFHOST_RETURN_IF_ERROR(FlushPending());
  pending_ = e;
  have_pending_ = true;
  return Status::OK();
}

Status ManifestBuilder::FlushPending() {
  if (!have_pending_) return Status::OK();
  have_pending_ = false;
  AppendManifestEntry(pending_, &segment_);
  if (++segment_entries_ == kManifestSegmentEntries) return EmitSegment();
  return Status::OK();
}

Status ManifestBuilder::EmitSegment() {
  if (segment_entries_ == 0) return Status::OK();
  OFFHOST_RETURN_IF_ERROR(sink_(segment_index_++, std::move(segment_)));
  segment_.clear();
  segment_entries_ = 0;
  return Status::OK();
}

Result<uint64_t> ManifestBuilder::Finish() {
  OFFHOST_RETURN_IF_ERROR(FlushPending());
  OFFHOST_RETURN_IF_ERROR(EmitSegment());
  return next_offset_;
}

}  // namespace offhost::storage
