// Manifest segment codec; layout in docs/datastore-format.md ("Manifest segment").
#include "offhost/storage/manifest.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_map>

#include "little_endian.h"

namespace offhost::storage {
namespace {

constexpr size_t kFixedPart = 1 + 8 + 8;  // format 1: kind, offset, length
// On disk, a chunk entry that starts inside its chunk has its own kind (it carries one more
// field); in memory both are kChunk.
constexpr uint8_t kChunkSliceCode = 3;
// First byte of a format-2 segment; a format-1 segment starts with a kind (0..3).
constexpr uint8_t kFormat2Marker = 0xF2;

bool Continues(const ManifestEntry& a, const ManifestEntry& b) {
  if (a.kind != b.kind) return false;
  if (a.kind != ManifestEntryKind::kChunk) return true;
  return a.chunk == b.chunk && uint64_t{a.chunk_offset} + a.length == b.chunk_offset;
}

// A chunk entry whose bytes would run past the largest chunk (written so that a huge length
// cannot wrap the sum around).
bool PastLargestChunk(const ManifestEntry& e) {
  return e.kind == ManifestEntryKind::kChunk &&
         (e.chunk_offset > kMaxChunkBytes || e.length > kMaxChunkBytes - e.chunk_offset);
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

void AppendManifestEntryV1(const ManifestEntry& e, std::string* segment) {
  bool slice = e.kind == ManifestEntryKind::kChunk && e.chunk_offset != 0;
  segment->push_back(static_cast<char>(slice ? kChunkSliceCode : static_cast<uint8_t>(e.kind)));
  AppendLe<uint64_t>(segment, e.offset);
  AppendLe<uint64_t>(segment, e.length);
  if (e.kind == ManifestEntryKind::kChunk) {
    segment->append(reinterpret_cast<const char*>(e.chunk.bytes.data()), e.chunk.bytes.size());
  }
  if (slice) AppendLe<uint32_t>(segment, e.chunk_offset);
}

namespace {

Result<std::vector<ManifestEntry>> DecodeV1(std::span<const char> segment) {
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
    bool too_long = PastLargestChunk(e);
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

void AppendVarint(std::string* s, uint64_t v) {
  for (; v >= 0x80; v >>= 7) s->push_back(static_cast<char>((v & 0x7f) | 0x80));
  s->push_back(static_cast<char>(v));
}

// Cursor over a format-2 segment; failures name what was being read and the byte.
class Reader {
 public:
  explicit Reader(std::span<const char> s) : s_(s) {}
  size_t pos() const { return pos_; }
  size_t left() const { return s_.size() - pos_; }
  const char* here() const { return s_.data() + pos_; }
  void Skip(size_t n) { pos_ += n; }
  uint8_t Byte() { return static_cast<uint8_t>(s_[pos_++]); }

  // LEB128, 7 bits a byte, least significant first: at most 10 bytes, at most 2^64-1, and
  // no over-long form (a last byte of 0 after others), so each value has one encoding.
  Status Varint(const char* what, uint64_t* v) {
    const size_t at = pos_;
    uint64_t out = 0;
    for (int i = 0; i < 10; ++i) {
      if (pos_ == s_.size()) {
        return Status::Corruption("manifest segment ends inside " + std::string(what) +
                                  " at byte " + std::to_string(at));
      }
      const uint8_t b = Byte();
      if (i == 9 && b > 1) break;
      out |= uint64_t{b & 0x7fu} << (7 * i);
      if (!(b & 0x80)) {
        if (b == 0 && i > 0) break;
        *v = out;
        return Status::OK();
      }
    }
    return Status::Corruption("manifest segment has an invalid varint for " + std::string(what) +
                              " at byte " + std::to_string(at));
  }

 private:
  std::span<const char> s_;
  size_t pos_ = 0;
};

// One encoding per table: the encoder lists each id once. A hash table of positions (open
// addressing) rather than a sort: GC's mark decodes every segment, and this stays a few ns
// an id.
Status CheckIdsDistinct(std::span<const char> table) {
  const size_t n = table.size() / 32;
  if (n < 2) return Status::OK();
  const size_t bits = std::bit_width(n * 2 - 1), mask = (size_t{1} << bits) - 1;
  std::vector<uint32_t> slots(mask + 1, 0);  // 1 + the position of an id, 0 = free
  for (size_t i = 0; i < n; ++i) {
    const char* id = &table[i * 32];
    uint64_t w[4];
    std::memcpy(w, id, 32);
    const uint64_t h = (w[0] ^ (w[1] * 0x9E3779B97F4A7C15ull) ^ (w[2] * 0xC2B2AE3D27D4EB4Full) ^
                        (w[3] * 0x165667B19E3779F9ull)) *
                       0xD6E8FEB86659FD93ull;
    for (size_t s = h >> (64 - bits);; s = (s + 1) & mask) {
      if (slots[s] == 0) {
        slots[s] = static_cast<uint32_t>(i + 1);
        break;
      }
      if (std::memcmp(&table[(slots[s] - 1) * size_t{32}], id, 32) == 0) {
        ChunkId dup;
        std::memcpy(dup.bytes.data(), id, 32);
        return Status::Corruption("manifest segment lists chunk id " + dup.ShortHex() + " twice");
      }
    }
  }
  return Status::OK();
}

Status EntryError(const ManifestEntry& e, size_t at, const std::string& what) {
  return Status::Corruption("manifest entry at disk offset " + std::to_string(e.offset) +
                            " (segment byte " + std::to_string(at) + ") " + what);
}

// Reads an entry's chunk reference: 0 = the next unused id of the table, n > 0 = the id n
// places before it.
Status ReadChunkRef(Reader& r, std::span<const char> table, uint64_t* used, ChunkId* id) {
  const size_t at = r.pos();
  uint64_t back = 0;
  OFFHOST_RETURN_IF_ERROR(r.Varint("a chunk reference", &back));
  const uint64_t count = table.size() / 32;
  if (back == 0 && *used == count) {
    return Status::Corruption("manifest segment byte " + std::to_string(at) +
                              " uses a new chunk id but all " + std::to_string(count) +
                              " ids of its table are in use");
  }
  if (back > *used) {
    return Status::Corruption("manifest segment byte " + std::to_string(at) +
                              " refers to the chunk id " + std::to_string(back) + " back from id " +
                              std::to_string(*used) + ", before the table's start");
  }
  const uint64_t index = back == 0 ? (*used)++ : *used - back;
  std::memcpy(id->bytes.data(), &table[index * 32], 32);
  return Status::OK();
}

Result<std::vector<ManifestEntry>> DecodeV2(std::span<const char> segment) {
  Reader r(segment);
  r.Skip(1);  // the marker
  uint64_t offset = 0, shift = 0, count = 0;
  OFFHOST_RETURN_IF_ERROR(r.Varint("the first disk offset", &offset));
  OFFHOST_RETURN_IF_ERROR(r.Varint("the length shift", &shift));
  if (shift > 63) {
    return Status::Corruption("manifest segment has length shift " + std::to_string(shift) +
                              " (at most 63)");
  }
  OFFHOST_RETURN_IF_ERROR(r.Varint("the chunk id count", &count));
  if (count > r.left() / 32) {
    return Status::Corruption("manifest segment lists " + std::to_string(count) +
                              " chunk ids but only " + std::to_string(r.left()) +
                              " bytes follow at byte " + std::to_string(r.pos()));
  }
  std::span<const char> table(r.here(), count * 32);
  r.Skip(count * 32);
  OFFHOST_RETURN_IF_ERROR(CheckIdsDistinct(table));
  std::vector<ManifestEntry> out;
  uint64_t used = 0, stored_bits = 0;
  while (r.left() > 0) {
    const size_t at = r.pos();
    const uint8_t kind = r.Byte();
    ManifestEntry e;
    e.offset = offset;
    if (kind > kChunkSliceCode) {
      return EntryError(e, at, "has unknown kind " + std::to_string(kind));
    }
    const bool slice = kind == kChunkSliceCode;
    e.kind = slice ? ManifestEntryKind::kChunk : static_cast<ManifestEntryKind>(kind);
    uint64_t length = 0;
    OFFHOST_RETURN_IF_ERROR(r.Varint("an entry's length", &length));
    if (length == 0 || length > (UINT64_MAX >> shift)) {
      return EntryError(e, at,
                        "has invalid length: stored " + std::to_string(length) + ", shift " +
                            std::to_string(shift));
    }
    stored_bits |= length;
    e.length = length << shift;
    if (e.kind == ManifestEntryKind::kChunk) {
      OFFHOST_RETURN_IF_ERROR(ReadChunkRef(r, table, &used, &e.chunk));
    }
    if (slice) {
      uint64_t chunk_offset = 0;
      OFFHOST_RETURN_IF_ERROR(r.Varint("a slice's chunk offset", &chunk_offset));
      if (chunk_offset == 0 || chunk_offset > (kMaxChunkBytes >> shift)) {  // 0: kind 0 says that
        return EntryError(e, at,
                          "has invalid chunk offset: stored " + std::to_string(chunk_offset) +
                              ", shift " + std::to_string(shift));
      }
      stored_bits |= chunk_offset;
      e.chunk_offset = static_cast<uint32_t>(chunk_offset << shift);
    }
    if (PastLargestChunk(e)) {
      return EntryError(e, at,
                        "has chunk offset " + std::to_string(e.chunk_offset) + " and length " +
                            std::to_string(e.length) + ": past the largest chunk (64 MiB)");
    }
    if (e.offset + e.length < e.offset) {
      return EntryError(e, at, "with length " + std::to_string(e.length) + " ends past 2^64");
    }
    offset = e.offset + e.length;
    out.push_back(e);
  }
  if (out.empty()) return Status::Corruption("manifest segment (format 2) has no entries");
  if (used != count) {
    return Status::Corruption("manifest segment lists " + std::to_string(count) +
                              " chunk ids but its entries use " + std::to_string(used));
  }
  if (!(stored_bits & 1)) {  // one encoding: the largest shift that divides all
    return Status::Corruption("manifest segment's length shift " + std::to_string(shift) +
                              " is not the largest that divides its lengths");
  }
  return out;
}

}  // namespace

std::string EncodeManifestSegment(std::span<const ManifestEntry> entries) {
  uint64_t bits = 0;  // the largest power of two dividing every length and slice offset
  for (const ManifestEntry& e : entries) {
    bits |= e.length | (e.kind == ManifestEntryKind::kChunk ? e.chunk_offset : 0);
  }
  const int shift = bits ? std::countr_zero(bits) : 0;
  // Chunk ids in order of first use, and each entry's reference back into that order.
  std::unordered_map<ChunkId, uint64_t, ChunkIdHash> number;
  std::string table;
  std::vector<uint64_t> refs;
  refs.reserve(entries.size());
  for (const ManifestEntry& e : entries) {
    if (e.kind != ManifestEntryKind::kChunk) continue;
    auto [it, added] = number.try_emplace(e.chunk, number.size());
    refs.push_back(added ? 0 : number.size() - it->second);
    if (added) table.append(reinterpret_cast<const char*>(e.chunk.bytes.data()), 32);
  }
  std::string out(1, static_cast<char>(kFormat2Marker));
  AppendVarint(&out, entries.empty() ? 0 : entries.front().offset);
  AppendVarint(&out, shift);
  AppendVarint(&out, number.size());
  out += table;
  size_t ref = 0;
  for (const ManifestEntry& e : entries) {
    const bool chunk = e.kind == ManifestEntryKind::kChunk, slice = chunk && e.chunk_offset != 0;
    out.push_back(static_cast<char>(slice ? kChunkSliceCode : static_cast<uint8_t>(e.kind)));
    AppendVarint(&out, e.length >> shift);
    if (chunk) AppendVarint(&out, refs[ref++]);
    if (slice) AppendVarint(&out, e.chunk_offset >> shift);
  }
  return out;
}

Result<std::vector<ManifestEntry>> DecodeManifestSegment(std::span<const char> segment) {
  if (!segment.empty() && static_cast<uint8_t>(segment[0]) == kFormat2Marker) {
    return DecodeV2(segment);
  }
  return DecodeV1(segment);
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
  segment_.push_back(pending_);
  if (segment_.size() == kManifestSegmentEntries) return EmitSegment();
  return Status::OK();
}

Status ManifestBuilder::EmitSegment() {
  if (segment_.empty()) return Status::OK();
  std::string bytes = EncodeManifestSegment(segment_);
  segment_.clear();
  return sink_(segment_index_++, std::move(bytes));
}

Result<uint64_t> ManifestBuilder::Finish() {
  OFFHOST_RETURN_IF_ERROR(FlushPending());
  OFFHOST_RETURN_IF_ERROR(EmitSegment());
  return next_offset_;
}

}  // namespace offhost::storage
