// A stored snapshot read in place as a BlockDevice.
#include "offhost/storage/snapshot_disk.h"

#include <gtest/gtest.h>

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
  for (auto [off, len] : std::vector<std::pair<uint64_t, size_t>>{
           {0, 10}, {50, 3 * kChunk}, {kChunk - 1, 2}, {7 * kChunk, 4 * kChunk},
           {20 * kChunk + 700, 77}, {0, original.size()}}) {
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

}  // namespace
}  // namespace offhost::proxy
