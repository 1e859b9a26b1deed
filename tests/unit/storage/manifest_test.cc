#include "offhost/storage/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iostream>
#include <random>
#include <set>

namespace offhost::storage {
namespace {

ManifestEntry Chunk(uint64_t off, uint64_t len, char tag) {
  return {off, len, ManifestEntryKind::kChunk, ChunkId::Of(std::string(1, tag))};
}
ManifestEntry Zero(uint64_t off, uint64_t len) { return {off, len, ManifestEntryKind::kZero, {}}; }
ManifestEntry Hole(uint64_t off, uint64_t len) {
  return {off, len, ManifestEntryKind::kUnallocated, {}};
}

struct Collected {
  std::vector<std::pair<uint32_t, std::string>> segments;
  ManifestBuilder::SegmentSink Sink() {
    return [this](uint32_t i, std::string s) {
      segments.emplace_back(i, std::move(s));
      return Status::OK();
    };
  }
  std::vector<ManifestEntry> All() {
    std::vector<ManifestEntry> out;
    for (auto& [i, s] : segments) {
      auto d = DecodeManifestSegment(s);
      EXPECT_TRUE(d.ok()) << d.status().message();
      out.insert(out.end(), d->begin(), d->end());
    }
    return out;
  }
};

TEST(Manifest, MergesRunsOfZeroesAndHolesButNotChunks) {
  Collected c;
  ManifestBuilder b(c.Sink());
  ASSERT_TRUE(b.Add(Hole(0, 10)).ok());
  ASSERT_TRUE(b.Add(Hole(10, 10)).ok());
  ASSERT_TRUE(b.Add(Zero(20, 5)).ok());
  ASSERT_TRUE(b.Add(Zero(25, 5)).ok());
  ASSERT_TRUE(b.Add(Chunk(30, 10, 'a')).ok());
  ASSERT_TRUE(b.Add(Chunk(40, 10, 'a')).ok());
  ASSERT_TRUE(b.Add(Hole(50, 1)).ok());
  auto total = b.Finish();
  ASSERT_TRUE(total.ok());
  EXPECT_EQ(*total, 51u);
  std::vector<ManifestEntry> want = {Hole(0, 20), Zero(20, 10), Chunk(30, 10, 'a'),
                                     Chunk(40, 10, 'a'), Hole(50, 1)};
  EXPECT_EQ(c.All(), want);
}

TEST(Manifest, SlicesRoundTripAndContiguousSlicesOfOneChunkMerge) {
  Collected c;
  ManifestBuilder b(c.Sink());
  ManifestEntry whole = Chunk(0, 100, 'a');
  ASSERT_TRUE(b.Add(ClipManifestEntry(whole, 0, 30)).ok());
  ASSERT_TRUE(b.Add(Chunk(30, 10, 'b')).ok());
  ASSERT_TRUE(b.Add(ClipManifestEntry(whole, 40, 20)).ok());
  ASSERT_TRUE(b.Add(ClipManifestEntry(whole, 60, 40)).ok());  // continues the previous slice
  ASSERT_TRUE(b.Finish().ok());
  ManifestEntry tail = whole;
  tail.offset = 40;
  tail.length = 60;
  tail.chunk_offset = 40;
  std::vector<ManifestEntry> want = {Chunk(0, 30, 'a'), Chunk(30, 10, 'b'), tail};
  EXPECT_EQ(c.All(), want);
}

TEST(Manifest, Format1DecodeRejectsASliceBeyondTheLargestChunk) {
  ManifestEntry e = Chunk(0, 4096, 'a');
  e.chunk_offset = static_cast<uint32_t>(kMaxChunkBytes - 100);
  std::string seg;
  AppendManifestEntryV1(e, &seg);
  EXPECT_EQ(DecodeManifestSegment(seg).status().code(), StatusCode::kCorruption);
  e.chunk_offset = 4096;  // chunk offset + length wraps around 2^64
  e.length = ~0ull - 4095;
  seg.clear();
  AppendManifestEntryV1(e, &seg);
  EXPECT_EQ(DecodeManifestSegment(seg).status().code(), StatusCode::kCorruption);
}

TEST(Manifest, RejectsGapsAndOverlaps) {
  Collected c;
  ManifestBuilder b(c.Sink());
  ASSERT_TRUE(b.Add(Chunk(0, 10, 'a')).ok());
  EXPECT_EQ(b.Add(Chunk(11, 10, 'b')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b.Add(Chunk(5, 10, 'b')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(b.Add(Chunk(10, 0, 'b')).code(), StatusCode::kInvalidArgument);
}

TEST(Manifest, SplitsIntoNumberedSegments) {
  Collected c;
  ManifestBuilder b(c.Sink());
  const uint64_t n = kManifestSegmentEntries * 2 + 3;
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(b.Add(Chunk(i * 4096, 4096, static_cast<char>(i))).ok());
  }
  ASSERT_TRUE(b.Finish().ok());
  ASSERT_EQ(c.segments.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(c.segments[i].first, i);
  EXPECT_EQ(c.All().size(), n);
}

TEST(Manifest, Format1DecodeRejectsDamage) {
  std::string seg;
  AppendManifestEntryV1(Chunk(0, 4096, 'a'), &seg);
  AppendManifestEntryV1(Zero(4096, 4096), &seg);
  ASSERT_TRUE(DecodeManifestSegment(seg).ok());

  EXPECT_EQ(DecodeManifestSegment(seg.substr(0, seg.size() - 1)).status().code(),
            StatusCode::kCorruption);
  std::string bad_kind = seg;
  bad_kind[0] = 9;
  EXPECT_EQ(DecodeManifestSegment(bad_kind).status().code(), StatusCode::kCorruption);
  std::string gap;
  AppendManifestEntryV1(Chunk(0, 4096, 'a'), &gap);
  AppendManifestEntryV1(Zero(8192, 4096), &gap);
  EXPECT_EQ(DecodeManifestSegment(gap).status().code(), StatusCode::kCorruption);
  std::string zero_len;
  AppendManifestEntryV1(Zero(0, 0), &zero_len);
  EXPECT_EQ(DecodeManifestSegment(zero_len).status().code(), StatusCode::kCorruption);
}

// Format 2 (docs/datastore-format.md, "Manifest segment") written by hand.
std::string Varint(uint64_t v) {
  std::string s;
  for (; v >= 0x80; v >>= 7) s.push_back(static_cast<char>((v & 0x7f) | 0x80));
  s.push_back(static_cast<char>(v));
  return s;
}
std::string Id(char tag) {
  ChunkId id = ChunkId::Of(std::string(1, tag));
  return std::string(reinterpret_cast<const char*>(id.bytes.data()), 32);
}
std::string Header(uint64_t first, uint64_t shift, const std::string& ids) {
  return "\xF2" + Varint(first) + Varint(shift) + Varint(ids.size() / 32) + ids;
}
// The message of a decode that must fail with kCorruption.
std::string Damage(const std::string& seg) {
  auto d = DecodeManifestSegment(seg);
  if (d.ok() || d.status().code() != StatusCode::kCorruption) return "not corruption";
  return d.status().message();
}

ManifestEntry Slice(uint64_t off, uint64_t len, char tag, uint32_t chunk_offset) {
  ManifestEntry e = Chunk(off, len, tag);
  e.chunk_offset = chunk_offset;
  return e;
}

// Every kind; one chunk used three times; one length not a multiple of 4096 (the last).
std::vector<ManifestEntry> Mixed() {
  const uint64_t g = 1ull << 30;
  return {Chunk(0, 12288, 'a'),
          Slice(12288, 4096, 'b', 8192),
          Zero(16384, 8192),
          Hole(24576, g),
          Chunk(24576 + g, 4 << 20, 'c'),
          Slice(24576 + g + (4 << 20), 4096, 'a', 16384),
          Slice(28672 + g + (4 << 20), 100, 'b', 4096)};
}

TEST(Manifest, BuilderWritesFormat2) {
  Collected c;
  ManifestBuilder b(c.Sink());
  for (const ManifestEntry& e : Mixed()) ASSERT_TRUE(b.Add(e).ok());
  ASSERT_TRUE(b.Finish().ok());
  ASSERT_EQ(c.segments.size(), 1u);
  EXPECT_EQ(static_cast<uint8_t>(c.segments[0].second[0]), 0xF2);
  EXPECT_EQ(c.All(), Mixed());
}

TEST(Manifest, Format2RoundTripsWithAndWithoutAShift) {
  std::vector<ManifestEntry> aligned = Mixed();
  aligned.pop_back();  // every length and offset is then a multiple of 4096
  for (const auto& entries : {Mixed(), aligned}) {
    std::string seg = EncodeManifestSegment(entries);
    auto d = DecodeManifestSegment(seg);
    ASSERT_TRUE(d.ok()) << d.status().message();
    EXPECT_EQ(*d, entries);
  }
  // A segment that starts far into the disk and ends at 2^64 exactly.
  std::vector<ManifestEntry> high = {Hole(~0ull - 8191, 4096), Chunk(~0ull - 4095, 4095, 'x')};
  auto d = DecodeManifestSegment(EncodeManifestSegment(high));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*d, high);
}

TEST(Manifest, Format1SegmentsStillDecode) {
  std::string seg;
  for (const ManifestEntry& e : Mixed()) AppendManifestEntryV1(e, &seg);
  auto d = DecodeManifestSegment(seg);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*d, Mixed());
  EXPECT_LT(EncodeManifestSegment(Mixed()).size(), seg.size());
}

TEST(Manifest, Format2DecodeRejectsDamage) {
  // [chunk a, 4096 bytes] [slice of a at 4096, 4096 bytes] [zero, 4096 bytes]; shift 12.
  const std::string entries = std::string(1, 0) + Varint(1) + Varint(0) +  //
                              std::string(1, 3) + Varint(1) + Varint(1) + Varint(1) +
                              std::string(1, 1) + Varint(1);
  const std::string good = Header(0, 12, Id('a')) + entries;
  auto d = DecodeManifestSegment(good);
  ASSERT_TRUE(d.ok()) << d.status().message();
  ASSERT_EQ(d->size(), 3u);
  EXPECT_EQ((*d)[1], ClipManifestEntry(Chunk(0, 8192, 'a'), 4096, 4096));

  using ::testing::HasSubstr;
  const std::string a = Header(0, 12, Id('a'));
  EXPECT_THAT(Damage(good.substr(0, 20)), HasSubstr("1 chunk ids but only 16 bytes follow"));
  EXPECT_THAT(Damage(good.substr(0, good.size() - 1)), HasSubstr("inside an entry's length"));
  EXPECT_THAT(Damage(good.substr(0, good.size() - 3)), HasSubstr("inside a slice's chunk offset"));
  EXPECT_THAT(Damage(a.substr(0, 3)), HasSubstr("inside the chunk id count"));
  EXPECT_THAT(Damage(a), HasSubstr("has no entries"));
  // Trailing bytes are an entry that is cut short or has an unknown kind.
  EXPECT_THAT(Damage(good + std::string(1, 1)), HasSubstr("ends inside an entry's length"));
  EXPECT_THAT(Damage(good + std::string(1, 7)), HasSubstr("unknown kind 7"));
  EXPECT_THAT(Damage(a + std::string(1, 4) + Varint(1)), HasSubstr("unknown kind 4"));
  EXPECT_THAT(Damage(a + "\xF2" + Varint(1)), HasSubstr("unknown kind 242"));
  // Chunk references: back further than the ids in use, a new id past the table, ids unused
  // or listed twice.
  EXPECT_THAT(Damage(a + std::string(1, 0) + Varint(1) + Varint(1)),
              HasSubstr("before the table's start"));
  EXPECT_THAT(Damage(good + std::string(1, 0) + Varint(1) + Varint(0)),
              HasSubstr("all 1 ids of its table are in use"));
  EXPECT_THAT(Damage(Header(0, 12, Id('a') + Id('b')) + entries),
              HasSubstr("lists 2 chunk ids but its entries use 1"));
  EXPECT_THAT(Damage(Header(0, 12, Id('a') + Id('a')) + entries + std::string(1, 0) + Varint(1) +
                     Varint(0)),
              HasSubstr("twice"));
  // A table count larger than the bytes that follow (it must not become a huge allocation).
  EXPECT_THAT(Damage("\xF2" + Varint(0) + Varint(0) + Varint(1ull << 60) + Id('a') + entries),
              HasSubstr("1152921504606846976 chunk ids but only 41 bytes follow"));
  // Varints: over-long, longer than 10 bytes, above 2^64-1.
  EXPECT_THAT(Damage(a + std::string(1, 1) + std::string("\x81\x00", 2)),
              HasSubstr("invalid varint for an entry's length"));
  EXPECT_THAT(Damage("\xF2" + std::string(10, '\x80') + "\x01" + Varint(0) + Varint(0) +
                     std::string(1, 1) + Varint(1)),
              HasSubstr("invalid varint for the first disk offset"));
  EXPECT_THAT(Damage("\xF2" + std::string(9, '\xff') + "\x02" + Varint(0) + Varint(0) +
                     std::string(1, 1) + Varint(1)),
              HasSubstr("invalid varint for the first disk offset"));
  // Lengths: zero, overflowing the shift, running past 2^64.
  EXPECT_THAT(Damage(Header(0, 0, "") + std::string(1, 1) + Varint(0)),
              HasSubstr("invalid length: stored 0"));
  EXPECT_THAT(Damage(Header(0, 12, "") + std::string(1, 1) + Varint(1ull << 60)),
              HasSubstr("invalid length: stored 1152921504606846976, shift 12"));
  EXPECT_THAT(Damage(Header(~0ull - 4095, 0, "") + std::string(1, 1) + Varint(4097)),
              HasSubstr("ends past 2^64"));
  // Shift: more than 63, or not the largest that divides every stored length and offset.
  EXPECT_THAT(Damage(Header(0, 64, "") + std::string(1, 1) + Varint(1)),
              HasSubstr("shift 64 (at most 63)"));
  EXPECT_THAT(Damage(Header(0, 11, "") + std::string(1, 1) + Varint(2)),
              HasSubstr("shift 11 is not the largest"));
  EXPECT_THAT(Damage(Header(0, 0, "") + std::string(1, 1) + Varint(96)),  // found by the fuzzer
              HasSubstr("shift 0 is not the largest"));
  // Slices at chunk offset 0 (kind 0 says that), entries reaching past the largest chunk.
  const std::string a0 = Header(0, 0, Id('a'));
  EXPECT_THAT(Damage(a0 + std::string(1, 3) + Varint(1) + Varint(0) + Varint(0)),
              HasSubstr("invalid chunk offset: stored 0"));
  EXPECT_THAT(
      Damage(a0 + std::string(1, 3) + Varint(101) + Varint(0) + Varint(kMaxChunkBytes - 100)),
      HasSubstr("has chunk offset 67108764 and length 101: past the largest chunk"));
  EXPECT_THAT(Damage(a0 + std::string(1, 0) + Varint(kMaxChunkBytes + 1) + Varint(0)),
              HasSubstr("has chunk offset 0 and length 67108865: past the largest chunk"));
  // A length so large that chunk offset + length wraps around 2^64.
  EXPECT_THAT(Damage(a0 + std::string(1, 3) + Varint(~0ull - 4094) + Varint(0) + Varint(4095)),
              HasSubstr("has chunk offset 4095 and length 18446744073709547521: past"));
}

// The shape of issue 3's benchmark: a 4 GiB disk of 4 MiB chunks whose incremental changed 655
// scattered 4 KiB-aligned 64 KiB runs, stored as slices of 11 new pack chunks.
TEST(Manifest, Format2IsSmallForAnIncrementalsManifest) {
  constexpr uint64_t kChunk = 4 << 20, kRun = 64 << 10, kRanges = 1024, kRuns = 655, kPacks = 11;
  std::mt19937 rng(3);
  std::vector<std::set<uint64_t>> runs(kRanges);  // changed runs' offsets in each range
  for (uint64_t placed = 0; placed < kRuns;) {
    uint64_t r = rng() % kRanges, at = (rng() % (kChunk / kRun - 1)) * kRun + (rng() % 16) * 4096;
    auto next = runs[r].lower_bound(at);
    bool clear = (next == runs[r].end() || *next >= at + kRun) &&
                 (next == runs[r].begin() || *std::prev(next) + kRun <= at);
    if (clear) runs[r].insert(at), ++placed;
  }
  Collected c;
  ManifestBuilder b(c.Sink());
  uint64_t run = 0;
  for (uint64_t r = 0; r < kRanges; ++r) {
    ManifestEntry old = Chunk(r * kChunk, kChunk, 'o');
    old.chunk = ChunkId::Of("old chunk " + std::to_string(r));
    uint64_t pos = 0;
    auto add = [&](const ManifestEntry& e) { ASSERT_TRUE(b.Add(e).ok()); };
    for (uint64_t at : runs[r]) {
      if (at > pos) add(ClipManifestEntry(old, r * kChunk + pos, at - pos));
      ManifestEntry pack = Chunk(r * kChunk + at, kRun, 'p');
      constexpr uint64_t kPerPack = (kRuns + kPacks - 1) / kPacks;
      pack.chunk = ChunkId::Of("pack " + std::to_string(run / kPerPack));
      pack.chunk_offset = static_cast<uint32_t>(run % kPerPack * kRun);
      ++run;
      add(pack);
      pos = at + kRun;
    }
    if (pos < kChunk) add(ClipManifestEntry(old, r * kChunk + pos, kChunk - pos));
  }
  ASSERT_TRUE(b.Finish().ok());
  ASSERT_EQ(c.segments.size(), 1u);
  const std::vector<ManifestEntry> all = c.All();
  std::set<ChunkId> ids;
  uint64_t slices = 0;
  for (const ManifestEntry& e : all) ids.insert(e.chunk), slices += e.chunk_offset != 0;
  ASSERT_EQ(ids.size(), kRanges + kPacks);
  std::string v1;
  for (const ManifestEntry& e : all) AppendManifestEntryV1(e, &v1);
  ASSERT_EQ(v1.size(), all.size() * 49 + slices * 4);
  // Format 2 with every value a multiple of 4 KiB: lengths and slice offsets are at most
  // 4 MiB / 4 KiB = 1024 (2-byte varints), references at most 1035 back (2 bytes), so an entry
  // takes at most 1 + 2 + 2 + 2 bytes and each id 32 once.
  const uint64_t bound = 1 + 10 + 1 + 2 + ids.size() * 32 + all.size() * 7;
  const uint64_t v2 = c.segments[0].second.size();
  EXPECT_LE(v2, bound);
  EXPECT_LE(v2 * 100, v1.size() * 40)
      << v2 << " bytes in format 2, " << v1.size() << " in format 1";
  std::cout << "benchmark-shaped manifest: " << all.size() << " entries, " << ids.size()
            << " chunk ids; format 1 " << v1.size() << " bytes, format 2 " << v2 << " bytes\n";
}

}  // namespace
}  // namespace offhost::storage
