// The decoded-chunk cache shared by a restore's or a merge's threads: proven bytes, each
// chunk decoded once while it stays, damage reported and never cached.
#include "decoded_chunk_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "offhost/storage/chunk_codec.h"
#include "test_util.h"

namespace offhost::proxy {
namespace {

using storage::ChunkId;

class DecodedChunkCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = storage::OpenLocalChunkStore(dir_.path());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
  }

  ChunkId Put(const std::string& data) {
    ChunkId id = ChunkId::Of(data);
    auto encoded = encoder_.Encode(id, data);
    EXPECT_TRUE(encoded.ok());
    EXPECT_TRUE(store_->Put(id, *encoded).ok());
    EXPECT_TRUE(store_->Sync().ok());
    return id;
  }

  std::string PathOf(const ChunkId& id) {
    return dir_.path() + "/" + id.Hex().substr(0, 4) + "/" + id.Hex();
  }

  offhost::testing::TempDir dir_;
  std::unique_ptr<storage::ChunkStore> store_;
  storage::ChunkEncoder encoder_;
};

TEST_F(DecodedChunkCacheTest, KeepsRecentChunksDecodedAndDropsTheLeastRecentBeyondTheBudget) {
  const std::string a = offhost::testing::RandomBytes(40000, 1);
  const std::string b = offhost::testing::RandomBytes(40000, 2);
  const std::string c = offhost::testing::RandomBytes(40000, 3);
  ChunkId ia = Put(a), ib = Put(b), ic = Put(c);
  DecodedChunkCache cache(*store_, 100000);  // room for two of them
  bool damaged = true;
  for (const auto& [id, bytes] : {std::pair{ia, a}, {ib, b}, {ic, c}}) {
    auto got = cache.Get(id, &damaged);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(**got, bytes);
    EXPECT_FALSE(damaged);
  }
  // With the files gone, only what the cache kept can still be had: b and c, not a.
  for (const ChunkId& id : {ia, ib, ic}) std::filesystem::remove(PathOf(id));
  EXPECT_EQ(**cache.Get(ic, &damaged), c);
  EXPECT_EQ(**cache.Get(ib, &damaged), b);
  auto gone = cache.Get(ia, &damaged);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(damaged);
}

TEST_F(DecodedChunkCacheTest, ADamagedChunkIsReportedAndNotCached) {
  const std::string data = offhost::testing::RandomBytes(50000, 4);
  ChunkId id = Put(data);
  std::string good;
  {
    std::ifstream in(PathOf(id), std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string bad = good;
  bad[bad.size() - 10] ^= 0x40;  // one payload bit
  std::filesystem::permissions(PathOf(id), std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  std::ofstream(PathOf(id), std::ios::binary | std::ios::trunc) << bad;
  DecodedChunkCache cache(*store_, 1 << 20);
  bool damaged = false;
  auto got = cache.Get(id, &damaged);
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(damaged);
  // Repaired (as a later backup would), the next reader decodes it afresh.
  std::ofstream(PathOf(id), std::ios::binary | std::ios::trunc) << good;
  got = cache.Get(id, &damaged);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(**got, data);
  EXPECT_FALSE(damaged);
}

TEST_F(DecodedChunkCacheTest, ThreadsAskingForTheSameChunksGetTheSameBytes) {
  std::vector<std::string> data;
  std::vector<ChunkId> ids;
  for (uint32_t i = 0; i < 6; ++i) {
    data.push_back(offhost::testing::RandomBytes(30000 + i, 10 + i));
    ids.push_back(Put(data.back()));
  }
  DecodedChunkCache cache(*store_, 70000);  // smaller than the set: evictions under load
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round) {
        size_t i = (round * 7 + t) % ids.size();
        bool damaged = false;
        auto got = cache.Get(ids[i], &damaged);
        if (!got.ok() || **got != data[i]) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace offhost::proxy
