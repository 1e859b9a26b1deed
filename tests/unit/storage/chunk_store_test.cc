#include "offhost/storage/chunk_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "offhost/storage/chunk_codec.h"
#include "test_util.h"

namespace offhost::storage {
namespace {

std::string EncodeFor(const std::string& data) {
  ChunkEncoder enc;
  auto out = enc.Encode(ChunkId::Of(data), data);
  EXPECT_TRUE(out.ok());
  return out.ok() ? std::string(out->begin(), out->end()) : std::string();
}

TEST(LocalChunkStore, PutIsIdempotentAndReadable) {
  testing::TempDir dir;
  auto store = OpenLocalChunkStore(dir.path());
  ASSERT_TRUE(store.ok());
  std::string data = testing::RandomBytes(10000, 1);
  ChunkId id = ChunkId::Of(data);
  std::string file = EncodeFor(data);

  EXPECT_FALSE(*(*store)->Contains(id));
  EXPECT_TRUE(*(*store)->Put(id, file));   // written
  EXPECT_FALSE(*(*store)->Put(id, file));  // already there
  EXPECT_TRUE(*(*store)->Contains(id));
  ASSERT_TRUE((*store)->Sync().ok());
  auto back = (*store)->Get(id);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, file);
  EXPECT_EQ((*store)->Locate(id), dir.path() + "/" + id.Hex().substr(0, 4) + "/" + id.Hex());
}

// An encoder's output starts on a block boundary and is written in place up to its last whole
// block; the rest goes through a copy. Every split of the two must give back the same file.
TEST(LocalChunkStore, EncoderOutputOfAnySizeIsStoredWhole) {
  testing::TempDir dir;
  auto store = OpenLocalChunkStore(dir.path());
  ASSERT_TRUE(store.ok());
  ChunkEncoder enc;
  const size_t header = kChunkHeaderSize;
  for (size_t size : {size_t{1}, 4096 - header - 1, 4096 - header, 4096 - header + 1,
                      size_t{3 * 4096}, size_t{(1u << 20) + 8}, size_t{(1u << 20) + 9}}) {
    // Odd sizes from 1 MiB on compress (a zstd frame of no particular length), the rest not.
    std::string data =
        size > (1u << 20) && size % 2 ? std::string(size, 'c') : testing::RandomBytes(size, size);
    ChunkId id = ChunkId::Of(data);
    auto encoded = enc.Encode(id, data);
    ASSERT_TRUE(encoded.ok());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(encoded->data()) % 4096, 0u) << size;
    ASSERT_TRUE(*(*store)->Put(id, *encoded)) << size;
    ASSERT_TRUE((*store)->Sync().ok());
    auto back = (*store)->Get(id);
    ASSERT_TRUE(back.ok()) << size;
    EXPECT_EQ(*back, std::string(encoded->begin(), encoded->end())) << size;
    std::string decoded;
    EXPECT_TRUE(DecodeChunk(id, *back, &decoded).ok()) << size;
    EXPECT_EQ(decoded, data) << size;
  }
}

// offhostd runs several backups into one datastore at once, each with its own store object:
// two of them writing the same chunk before either synced must not share a temporary file.
TEST(LocalChunkStore, TwoStoresOfOneProcessWriteTheSameChunk) {
  testing::TempDir dir;
  auto a = OpenLocalChunkStore(dir.path());
  auto b = OpenLocalChunkStore(dir.path());
  ASSERT_TRUE(a.ok() && b.ok());
  std::string data = testing::RandomBytes(10000, 7);
  ChunkId id = ChunkId::Of(data);
  std::string file = EncodeFor(data);
  Result<bool> put_a = (*a)->Put(id, file);
  Result<bool> put_b = (*b)->Put(id, file);
  ASSERT_TRUE(put_a.ok()) << put_a.status().message();
  ASSERT_TRUE(put_b.ok()) << put_b.status().message();
  ASSERT_TRUE((*a)->Sync().ok());
  ASSERT_TRUE((*b)->Sync().ok());
  EXPECT_EQ(*(*a)->Get(id), file);
}

TEST(LocalChunkStore, MissingChunkIsNotFoundAndNamed) {
  testing::TempDir dir;
  auto store = OpenLocalChunkStore(dir.path());
  ChunkId id = ChunkId::Of(std::string("nope"));
  auto r = (*store)->Get(id);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(id.Hex()), std::string::npos);
}

TEST(LocalChunkStore, ConcurrentWritersOfTheSameChunkAreHarmless) {
  testing::TempDir dir;
  auto store = OpenLocalChunkStore(dir.path());
  std::string data = testing::RandomBytes(1 << 20, 2);
  ChunkId id = ChunkId::Of(data);
  std::string file = EncodeFor(data);
  std::vector<std::thread> threads;
  std::atomic<int> wrote{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      auto r = (*store)->Put(id, file);
      ASSERT_TRUE(r.ok()) << r.status().message();
      if (*r) ++wrote;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(wrote.load(), 1);
  std::string out;
  EXPECT_TRUE(DecodeChunk(id, *(*store)->Get(id), &out).ok());
  EXPECT_EQ(out, data);
  // No temporary file is left behind.
  int files = 0;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir.path())) {
    if (e.is_regular_file()) ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(LocalChunkStore, AChunkGetsItsNameOnlyWhenSyncMadeItDurable) {
  testing::TempDir dir;
  auto store = OpenLocalChunkStore(dir.path());
  std::string data = testing::RandomBytes(1000, 7);
  ChunkId id = ChunkId::Of(data);
  ASSERT_EQ(*(*store)->Put(id, EncodeFor(data)), true);
  EXPECT_FALSE(std::filesystem::exists((*store)->Locate(id)));  // a crash now leaves a .tmp only
  EXPECT_TRUE(*(*store)->Contains(id));  // yet this process dedupes against it and can read it
  EXPECT_EQ(*(*store)->Put(id, EncodeFor(data)), false);
  auto got = (*store)->Get(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, EncodeFor(data));
  ASSERT_TRUE((*store)->Sync().ok());
  EXPECT_TRUE(std::filesystem::exists((*store)->Locate(id)));
  auto reopened = OpenLocalChunkStore(dir.path());
  EXPECT_TRUE(*(*reopened)->IsStored(id));
}

TEST(LocalChunkStore, ForEachListsChunksAndSkipsTemporaryFiles) {
  testing::TempDir dir;
  auto store = OpenLocalChunkStore(dir.path());
  std::vector<ChunkId> ids;
  for (int i = 0; i < 5; ++i) {
    std::string data = testing::RandomBytes(100, static_cast<uint32_t>(i));
    ids.push_back(ChunkId::Of(data));
    ASSERT_TRUE((*store)->Put(ids.back(), EncodeFor(data)).ok());
  }
  ASSERT_TRUE((*store)->Sync().ok());
  std::string sub = dir.path() + "/" + ids[0].Hex().substr(0, 4);
  std::ofstream(sub + "/" + ids[0].Hex() + ".tmp.123.0") << "partial";
  std::vector<ChunkId> seen;
  ASSERT_TRUE((*store)
                  ->ForEach([&](const ChunkId& id) {
                    seen.push_back(id);
                    return Status::OK();
                  })
                  .ok());
  std::sort(seen.begin(), seen.end());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(seen, ids);
}

}  // namespace
}  // namespace offhost::storage
