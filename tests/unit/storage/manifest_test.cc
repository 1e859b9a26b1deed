#include "offhost/storage/manifest.h"

#include <gtest/gtest.h>

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

TEST(Manifest, DecodeRejectsASliceBeyondTheLargestChunk) {
  ManifestEntry e = Chunk(0, 4096, 'a');
  e.chunk_offset = static_cast<uint32_t>(kMaxChunkBytes - 100);
  std::string seg;
  AppendManifestEntry(e, &seg);
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

TEST(Manifest, DecodeRejectsDamage) {
  std::string seg;
  AppendManifestEntry(Chunk(0, 4096, 'a'), &seg);
  AppendManifestEntry(Zero(4096, 4096), &seg);
  ASSERT_TRUE(DecodeManifestSegment(seg).ok());

  EXPECT_EQ(DecodeManifestSegment(seg.substr(0, seg.size() - 1)).status().code(),
            StatusCode::kCorruption);
  std::string bad_kind = seg;
  bad_kind[0] = 9;
  EXPECT_EQ(DecodeManifestSegment(bad_kind).status().code(), StatusCode::kCorruption);
  std::string gap;
  AppendManifestEntry(Chunk(0, 4096, 'a'), &gap);
  AppendManifestEntry(Zero(8192, 4096), &gap);
  EXPECT_EQ(DecodeManifestSegment(gap).status().code(), StatusCode::kCorruption);
  std::string zero_len;
  AppendManifestEntry(Zero(0, 0), &zero_len);
  EXPECT_EQ(DecodeManifestSegment(zero_len).status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace offhost::storage
