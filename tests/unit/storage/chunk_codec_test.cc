#include "offhost/storage/chunk_codec.h"

#include <gtest/gtest.h>

#include <cstring>

#include "test_util.h"

namespace offhost::storage {
namespace {

std::string Encode(const std::string& data) {
  ChunkEncoder enc(1);
  auto out = enc.Encode(ChunkId::Of(data), data);
  EXPECT_TRUE(out.ok());
  return out.ok() ? std::string(out->begin(), out->end()) : std::string();
}

TEST(ChunkCodec, CompressibleDataIsCompressedAndRoundTrips) {
  std::string data(1 << 20, 'a');
  std::string file = Encode(data);
  EXPECT_LT(file.size(), data.size() / 100);
  auto hdr = DecodeChunkHeader(file);
  ASSERT_TRUE(hdr.ok()) << hdr.status().message();
  EXPECT_EQ(hdr->compression, ChunkCompression::kZstd);
  EXPECT_EQ(hdr->raw_size, data.size());
  std::string back;
  ASSERT_TRUE(DecodeChunk(ChunkId::Of(data), file, &back).ok());
  EXPECT_EQ(back, data);
}

TEST(ChunkCodec, IncompressibleDataIsStoredRaw) {
  std::string data = testing::RandomBytes(256 * 1024, 7);
  std::string file = Encode(data);
  EXPECT_EQ(file.size(), kChunkHeaderSize + data.size());
  EXPECT_EQ(DecodeChunkHeader(file)->compression, ChunkCompression::kNone);
  std::string back;
  ASSERT_TRUE(DecodeChunk(ChunkId::Of(data), file, &back).ok());
  EXPECT_EQ(back, data);
}

// A backup's buffers leave room for the header in front of the data: data that is stored raw
// is encoded there, without a copy; compressed data and data without that room are encoded
// into the encoder's own buffer, and the caller's bytes stay as they were.
TEST(ChunkCodec, EncodeInPlaceWritesTheHeaderInFrontOfRawData) {
  alignas(4096) static char buffer[kChunkHeaderSize + 8 + (256 << 10)];
  ChunkEncoder enc;
  std::string random = testing::RandomBytes(256 * 1024, 11);
  std::string text(256 * 1024, 'q');
  for (size_t shift : {size_t{0}, size_t{8}}) {  // 8: the room is not on a block boundary
    for (const std::string* data : {&random, &text}) {
      char* at = buffer + kChunkHeaderSize + shift;
      std::memcpy(at, data->data(), data->size());
      ChunkId id = ChunkId::Of(*data);
      auto file = enc.EncodeInPlace(id, {at, data->size()});
      ASSERT_TRUE(file.ok());
      const bool in_place = file->data() == at - kChunkHeaderSize;
      EXPECT_EQ(in_place, shift == 0 && data == &random) << shift;
      EXPECT_EQ(std::string(at, data->size()), *data) << "the data itself is never changed";
      std::string back;
      ASSERT_TRUE(DecodeChunk(id, *file, &back).ok());
      EXPECT_EQ(back, *data);
    }
  }
}

TEST(ChunkCodec, LargeIncompressibleChunkWithACompressibleTailIsStillCompressed) {
  std::string data = testing::RandomBytes(2 << 20, 9) + std::string(2 << 20, 't');
  std::string file = Encode(data);
  EXPECT_EQ(DecodeChunkHeader(file)->compression, ChunkCompression::kZstd);
  EXPECT_LT(file.size(), data.size() * 3 / 4);
  std::string random = testing::RandomBytes(4 << 20, 10);
  EXPECT_EQ(DecodeChunkHeader(Encode(random))->compression, ChunkCompression::kNone);
  std::string back;
  ASSERT_TRUE(DecodeChunk(ChunkId::Of(data), file, &back).ok());
  EXPECT_EQ(back, data);
}

TEST(ChunkCodec, EveryFlippedPayloadByteIsDetected) {
  for (const std::string& data :
       {std::string(300000, 'z') + "tail", testing::RandomBytes(70000, 3)}) {
    std::string file = Encode(data);
    ChunkId id = ChunkId::Of(data);
    for (size_t pos : {kChunkHeaderSize, file.size() / 2, file.size() - 1}) {
      std::string bad = file;
      bad[pos] ^= 0x01;
      std::string out;
      Status st = DecodeChunk(id, bad, &out);
      EXPECT_EQ(st.code(), StatusCode::kCorruption) << "flip at " << pos;
    }
  }
}

TEST(ChunkCodec, HeaderDamageIsDetected) {
  std::string data(5000, 'q');
  std::string file = Encode(data);
  ChunkId id = ChunkId::Of(data);
  std::string out;

  std::string bad_magic = file;
  bad_magic[0] = 'X';
  EXPECT_NE(DecodeChunk(id, bad_magic, &out).message().find("magic"), std::string::npos);

  std::string bad_size = file;
  bad_size[8] ^= 0x10;  // raw size field: header CRC catches it
  EXPECT_NE(DecodeChunk(id, bad_size, &out).message().find("checksum"), std::string::npos);

  std::string truncated = file.substr(0, file.size() - 3);
  EXPECT_NE(DecodeChunk(id, truncated, &out).message().find("truncated"), std::string::npos);

  EXPECT_EQ(DecodeChunk(id, file.substr(0, 10), &out).code(), StatusCode::kCorruption);
}

TEST(ChunkCodec, ChunkFileUnderAnotherNameIsRejected) {
  std::string a(4096, 'a'), b(4096, 'b');
  std::string out;
  Status st = DecodeChunk(ChunkId::Of(b), Encode(a), &out);
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find("instead of"), std::string::npos);
}

TEST(ChunkCodec, RejectsEmptyAndOversizedChunks) {
  ChunkEncoder enc;
  EXPECT_FALSE(enc.Encode(ChunkId::Of(std::string()), std::string()).ok());
}

}  // namespace
}  // namespace offhost::storage
