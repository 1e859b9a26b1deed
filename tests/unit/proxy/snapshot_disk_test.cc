// A stored snapshot read in place as a BlockDevice.
#include "offhost/storage/snapshot_disk.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "offhost/proxy/backup.h"
#include "test_util.h"

namespace offhost::proxy {
namespace {

using offhost::testing::MemoryDisk;
using offhost::testing::RandomBytes;

constexpr uint32_t kChunk = 64 * 1024;

TEST(SnapshotDisk, ReadsAnyRangeLikeTheOriginalAndMapsAllocation) {
  offhost::testing::TempDir dir;
  storage::DatastoreConfig config;
  config.chunk_size = kChunk;
  ASSERT_TRUE(storage::Datastore::Init(dir / "ds", config).ok());
  auto ds = std::move(*storage::Datastore::Open(dir / "ds", true));
  auto disk = std::make_unique<MemoryDisk>(20 * kChunk + 777);
  disk->Put(100, RandomBytes(3 * kChunk, 1));
  disk->Mark(8 * kChunk, 2 * kChunk, ExtentType::kZero);
  disk->Put(20 * kChunk, RandomBytes(777, 2));
  std::string original = disk->bytes();
  std::vector<BackupDisk> disks;
  disks.push_back({"vda", std::move(disk), ""});
  auto r = RunBackup(*ds, "vm", disks, {});
  ASSERT_TRUE(r.ok());

  storage::SnapshotDiskOptions o;
  o.cached_chunks = 2;
  auto dev = storage::OpenSnapshotDisk(*ds, r->snapshot, "vda", o);
  ASSERT_TRUE(dev.ok()) << dev.status().message();
  ASSERT_EQ((*dev)->size(), original.size());
  for (auto [off, len] : std::vector<std::pair<uint64_t, size_t>>{{0, 10},
                                                                  {50, 3 * kChunk},
                                                                  {kChunk - 1, 2},
                                                                  {7 * kChunk, 4 * kChunk},
                                                                  {20 * kChunk + 700, 77},
                                                                  {0, original.size()}}) {
    std::string buf(len, 'X');
    ReadRequest req{off, {buf.data(), buf.size()}};
    ASSERT_TRUE((*dev)->Read({&req, 1}).ok());
    EXPECT_EQ(buf, original.substr(off, len)) << "at " << off;
  }
  auto ext = (*dev)->Extents(0, original.size());
  ASSERT_TRUE(ext.ok());
  EXPECT_EQ(ext->front().type, ExtentType::kData);
  bool has_zero = false, has_hole = false;
  for (const auto& e : *ext) {
    has_zero |= e.type == ExtentType::kZero;
    has_hole |= e.type == ExtentType::kHole;
  }
  EXPECT_TRUE(has_zero);
  EXPECT_TRUE(has_hole);
  std::string past(10, 0);
  ReadRequest beyond{original.size() - 5, {past.data(), past.size()}};
  EXPECT_EQ((*dev)->Read({&beyond, 1}).code(), StatusCode::kInvalidArgument);
}

// An NBD server (nbdkit's parallel thread model) reads one disk from many threads at once,
// often into the same chunk: every read gets the right bytes, whether its chunk is cached,
// being decoded by another thread, or evicted meanwhile (a cache of 2 chunks).
TEST(SnapshotDisk, ParallelReadsOfTheSameChunksGetTheRightBytes) {
  offhost::testing::TempDir dir;
  storage::DatastoreConfig config;
  config.chunk_size = kChunk;
  ASSERT_TRUE(storage::Datastore::Init(dir / "ds", config).ok());
  auto ds = std::move(*storage::Datastore::Open(dir / "ds", true));
  auto disk = std::make_unique<MemoryDisk>(12 * kChunk);
  disk->Put(0, RandomBytes(12 * kChunk, 3));
  std::string original = disk->bytes();
  std::vector<BackupDisk> disks;
  disks.push_back({"vda", std::move(disk), ""});
  auto r = RunBackup(*ds, "vm", disks, {});
  ASSERT_TRUE(r.ok());
  storage::SnapshotDiskOptions o;
  o.cached_chunks = 2;
  auto dev = storage::OpenSnapshotDisk(*ds, r->snapshot, "vda", o);
  ASSERT_TRUE(dev.ok());

  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        uint64_t off = (uint64_t((i * 7 + t) % 12) * kChunk) + uint64_t(i * 4096 % kChunk);
        std::string buf(4096, 'X');
        ReadRequest req{off, {buf.data(), buf.size()}};
        if (!(*dev)->Read({&req, 1}).ok() || buf != original.substr(off, 4096)) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

// A damaged chunk fails every read waiting for it, with the chunk named, and is not cached:
// the next read tries again.
TEST(SnapshotDisk, ADamagedChunkFailsEveryReaderAndIsNotCached) {
  offhost::testing::TempDir dir;
  storage::DatastoreConfig config;
  config.chunk_size = kChunk;
  ASSERT_TRUE(storage::Datastore::Init(dir / "ds", config).ok());
  auto ds = std::move(*storage::Datastore::Open(dir / "ds", true));
  auto disk = std::make_unique<MemoryDisk>(2 * kChunk);
  disk->Put(0, RandomBytes(2 * kChunk, 4));
  std::string original = disk->bytes();
  std::vector<BackupDisk> disks;
  disks.push_back({"vda", std::move(disk), ""});
  auto r = RunBackup(*ds, "vm", disks, {});
  ASSERT_TRUE(r.ok());
  auto dev = storage::OpenSnapshotDisk(*ds, r->snapshot, "vda");
  ASSERT_TRUE(dev.ok());
  storage::ManifestEntry first;
  ASSERT_TRUE(ds->ForEachManifestEntry(r->snapshot, "vda", [&](const storage::ManifestEntry& e) {
                  if (first.length == 0) first = e;
                  return Status::OK();
                }).ok());
  std::string path = ds->chunks().Locate(first.chunk);
  std::string saved;
  {
    std::ifstream in(path, std::ios::binary);
    saved.assign(std::istreambuf_iterator<char>(in), {});
  }
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "not a chunk";
  }
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::string buf(4096, 0);
      ReadRequest req{100, {buf.data(), buf.size()}};
      Status st = (*dev)->Read({&req, 1});
      if (st.code() == StatusCode::kCorruption &&
          st.message().find(first.chunk.Hex()) != std::string::npos) {
        ++failed;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), 4);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << saved;
  }
  std::string buf(4096, 0);
  ReadRequest req{100, {buf.data(), buf.size()}};
  ASSERT_TRUE((*dev)->Read({&req, 1}).ok());
  EXPECT_EQ(buf, original.substr(100, 4096));
}

}  // namespace
}  // namespace offhost::proxy
