// Manifest segment codec; layout in docs/datastore-format.md ("Manifest segment").
#include "offhost/storage/manifest.h"

#include <cstring>

#include "little_endian.h"

namespace offhost::storage {
namespace {

constexpr size_t kFixedPart = 1 + 8 + 8;

}  // namespace

void AppendManifestEntry(const ManifestEntry& e, std::string* segment) {
  segment->push_back(static_cast<char>(e.kind));
  AppendLe<uint64_t>(segment, e.offset);
  AppendLe<uint64_t>(segment, e.length);
  if (e.kind == ManifestEntryKind::kChunk) {
    segment->append(reinterpret_cast<const char*>(e.chunk.bytes.data()), e.chunk.bytes.size());
  }
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
    if (kind > static_cast<uint8_t>(ManifestEntryKind::kUnallocated)) {
      return Status::Corruption("manifest entry at byte " + std::to_string(pos) +
                                " has unknown kind " + std::to_string(kind));
    }
    e.kind = static_cast<ManifestEntryKind>(kind);
    e.offset = GetLe<uint64_t>(segment.data() + pos + 1);
    e.length = GetLe<uint64_t>(segment.data() + pos + 9);
    pos += kFixedPart;
    if (e.kind == ManifestEntryKind::kChunk) {
      if (segment.size() - pos < 32) return Status::Corruption("manifest entry truncated");
      std::memcpy(e.chunk.bytes.data(), segment.data() + pos, 32);
      pos += 32;
    }
    if (e.length == 0 || e.offset + e.length < e.offset) {
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
  if (e.kind != ManifestEntryKind::kChunk && have_pending_ && pending_.kind == e.kind) {
    pending_.length += e.length;  // one entry for a whole run of zeroes or holes
    return Status::OK();
  }
  OFFHOST_RETURN_IF_ERROR(FlushPending());
  if (e.kind == ManifestEntryKind::kChunk) {
    AppendManifestEntry(e, &segment_);
    if (++segment_entries_ == kManifestSegmentEntries) return EmitSegment();
    return Status::OK();
  }
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
