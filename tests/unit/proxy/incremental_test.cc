// Incremental forever: only dirty ranges are read; the snapshot is complete on its own.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "offhost/proxy/backup.h"
#include "offhost/proxy/restore.h"
#include "offhost/storage/snapshot_disk.h"
#include "test_util.h"

namespace offhost::proxy {
namespace {

using offhost::testing::MemoryDisk;
using offhost::testing::RandomBytes;

constexpr uint32_t kChunk = 64 * 1024;
constexpr uint64_t kSize = 32 * kChunk + 5000;

class IncrementalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::DatastoreConfig config;
    config.chunk_size = kChunk;
    ASSERT_TRUE(storage::Datastore::Init(dir_ / "ds", config).ok());
    ds_ = std::move(*storage::Datastore::Open(dir_ / "ds", true));
    disk_ = std::make_unique<MemoryDisk>(kSize);
    disk_->Put(0, RandomBytes(10 * kChunk, 1));
    disk_->Put(20 * kChunk, RandomBytes(4 * kChunk, 2));
    disk_->Put(kSize - 5000, RandomBytes(5000, 3));
  }

  // Backs up a copy of disk_ (with its dirty map) relative to `previous`.
  Result<BackupResult> Backup(const storage::SnapshotRecord* previous, bool full = false) {
    auto copy = std::make_unique<MemoryDisk>(*disk_);
    last_ = copy.get();
    disks_.clear();  // the copy stays alive for inspection through last_
    disks_.push_back({"vda", std::move(copy), ""});
    BackupOptions o;
    o.threads = 2;
    o.catalog = false;  // these tests count the device reads of the image backup alone
    o.previous = previous;
    o.force_full = full;
    o.sources_read = sources_read_;
    return RunBackup(*ds_, "vm", disks_, o);
  }

  // Cuts short the file of the chunk that `snap` stores at disk offset `offset`.
  storage::ChunkId DamageChunkAt(const storage::SnapshotRecord& snap, uint64_t offset) {
    storage::ChunkId id;
    EXPECT_TRUE(ds_->ForEachManifestEntry(snap, "vda",
                                          [&](const storage::ManifestEntry& e) {
                                            if (e.offset == offset) id = e.chunk;
                                            return Status::OK();
                                          })
                    .ok());
    std::filesystem::resize_file(ds_->chunks().Locate(id), 100);
    return id;
  }

  // Writes over more than half of the chunk-size range at `offset` (so an incremental merges
  // it rather than patching) and marks it dirty; returns the bytes written.
  uint32_t RewriteMostOf(uint64_t offset) {
    const uint32_t changed = kChunk / 2 + 512;
    disk_->Put(offset, std::string(changed, 'q'));
    disk_->SetDirty({{offset, changed, ExtentType::kData}});
    return changed;
  }

  std::string Restore(const storage::SnapshotRecord& snap) {
    MemoryDisk target(kSize);
    auto r = RestoreDisk(*ds_, snap, "vda", target, {});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return target.bytes();
  }

  offhost::testing::TempDir dir_;
  std::unique_ptr<storage::Datastore> ds_;
  std::unique_ptr<MemoryDisk> disk_;
  std::vector<BackupDisk> disks_;
  MemoryDisk* last_ = nullptr;
  std::function<void()> sources_read_;
};

TEST_F(IncrementalTest, ReadsOnlyDirtyBytesAndRestoresTheNewState) {
  auto full = Backup(nullptr);
  ASSERT_TRUE(full.ok()) << full.status().message();
  std::string before = disk_->bytes();

  // The guest writes 4 KiB inside chunk 2, 8 KiB straddling chunks 20/21, and new data in a
  // hole (chunk 28); it also trims chunk 22 (allocation says hole, bitmap says dirty).
  disk_->Put(2 * kChunk + 100, std::string(4096, 'x'));
  disk_->Put(21 * kChunk - 4096, std::string(8192, 'y'));
  disk_->Put(28 * kChunk, std::string(4096, 'z'));
  disk_->Mark(22 * kChunk, kChunk, ExtentType::kHole);
  std::string after = disk_->bytes();
  std::memset(after.data() + 22 * kChunk, 0, kChunk);
  disk_->SetDirty({{2 * kChunk + 100, 4096, ExtentType::kData},
                   {21 * kChunk - 4096, 8192, ExtentType::kData},
                   {22 * kChunk, kChunk, ExtentType::kData},
                   {28 * kChunk, 4096, ExtentType::kData}});

  auto inc = Backup(&full->snapshot);
  ASSERT_TRUE(inc.ok()) << inc.status().message();
  const auto& d = inc->snapshot.disks[0];
  EXPECT_TRUE(d.incremental);
  EXPECT_EQ(d.full_reason, "");
  EXPECT_EQ(d.bytes_read, 4096u + 8192u + 4096u);
  EXPECT_EQ(last_->bytes_read(), d.bytes_read);
  EXPECT_EQ(d.dirty_bytes, 4096u + 8192u + 4096u);  // the trimmed chunk is a hole: not counted
  // Only the changed runs are stored, packed together into one chunk (16 KiB of runs from
  // three ranges), each run a slice of it.
  EXPECT_EQ(d.new_chunks, 1u);
  EXPECT_LT(d.new_bytes, 4u * 4096u + 64u);
  EXPECT_EQ(inc->snapshot.meta.parent, full->snapshot.id);

  EXPECT_EQ(Restore(inc->snapshot), after);
  EXPECT_EQ(Restore(full->snapshot), before);  // the older snapshot is untouched
}

TEST_F(IncrementalTest, ScatteredSmallWritesStayBoundedOverALongChain) {
  auto prev = Backup(nullptr);
  ASSERT_TRUE(prev.ok());
  // Forty backups, each with one 512-byte write at a new place of chunk 5 and one in chunk 6.
  for (uint32_t i = 0; i < 40; ++i) {
    uint64_t at = 5 * kChunk + (i * 1531u) % (kChunk - 512);
    disk_->Put(at, RandomBytes(512, 100 + i));
    disk_->Put(6 * kChunk + i * 1024, RandomBytes(512, 200 + i));
    disk_->SetDirty(
        {{at, 512, ExtentType::kData}, {6 * kChunk + i * 1024, 512, ExtentType::kData}});
    auto inc = Backup(&prev->snapshot);
    ASSERT_TRUE(inc.ok()) << inc.status().message();
    EXPECT_EQ(inc->snapshot.disks[0].bytes_read, 1024u);
    ASSERT_EQ(Restore(inc->snapshot), disk_->bytes()) << "after incremental " << i;
    // Random access (what file restores use) reads the slices right too.
    auto dev = storage::OpenSnapshotDisk(*ds_, inc->snapshot, "vda", {});
    ASSERT_TRUE(dev.ok());
    std::string got(2 * kChunk + 300, '\0');
    ReadRequest req{5 * kChunk - 150, {got.data(), got.size()}};
    ASSERT_TRUE((*dev)->Read({&req, 1}).ok());
    ASSERT_EQ(got, disk_->bytes().substr(5 * kChunk - 150, got.size()));
    size_t pieces5 = 0, pieces6 = 0;
    ASSERT_TRUE(ds_->ForEachManifestEntry(inc->snapshot, "vda",
                                          [&](const storage::ManifestEntry& e) {
                                            if (e.offset / kChunk == 5) ++pieces5;
                                            if (e.offset / kChunk == 6) ++pieces6;
                                            return Status::OK();
                                          })
                    .ok());
    EXPECT_LE(pieces5, 16u);  // a range this fragmented is rebuilt as one chunk
    EXPECT_LE(pieces6, 16u);
    prev = std::move(inc);
  }
}

// A backup starts with a short pipeline (a few buffers, one chunk per read batch) and grows
// it after 64 MiB. With one worker and a mix of packed runs and whole rewritten ranges, both a
// full and an incremental that cross that point must finish and restore byte for byte.
TEST(IncrementalPipeline, OneWorkerCrossesTheRampWithPacksAndWholeRanges) {
  constexpr uint64_t kChunks = 1600, kDiskSize = kChunks * kChunk;  // 100 MiB
  offhost::testing::TempDir dir;
  storage::DatastoreConfig config;
  config.chunk_size = kChunk;
  ASSERT_TRUE(storage::Datastore::Init(dir / "ds", config).ok());
  auto ds = std::move(*storage::Datastore::Open(dir / "ds", true));
  MemoryDisk disk(kDiskSize);
  disk.Put(0, RandomBytes(kDiskSize, 41));
  auto backup = [&](const storage::SnapshotRecord* previous) {
    std::vector<BackupDisk> disks;
    disks.push_back({"vda", std::make_unique<MemoryDisk>(disk), ""});
    BackupOptions o;
    o.threads = 1;
    o.catalog = false;
    o.previous = previous;
    return RunBackup(*ds, "vm", disks, o);
  };
  auto restore = [&](const storage::SnapshotRecord& snap) {
    MemoryDisk target(kDiskSize);
    auto r = RestoreDisk(*ds, snap, "vda", target, {});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return target.bytes();
  };
  auto full = backup(nullptr);
  ASSERT_TRUE(full.ok()) << full.status().message();
  ASSERT_EQ(restore(full->snapshot), disk.bytes());

  // Every fourth range gets a 4 KiB write (packed with others), the rest are rewritten whole:
  // ~75 MiB of changed bytes.
  std::vector<Extent> dirty;
  for (uint64_t i = 0; i < kChunks; ++i) {
    const bool small = i % 4 == 0;
    const uint64_t at = i * kChunk + (small ? 1000 : 0), length = small ? 4096 : kChunk;
    disk.Put(at, RandomBytes(length, static_cast<uint32_t>(1000 + i)));
    dirty.push_back({at, length, ExtentType::kData});
  }
  disk.SetDirty(dirty);
  auto inc = backup(&full->snapshot);
  ASSERT_TRUE(inc.ok()) << inc.status().message();
  EXPECT_TRUE(inc->snapshot.disks[0].incremental);
  EXPECT_EQ(restore(inc->snapshot), disk.bytes());
}

TEST_F(IncrementalTest, ScatteredRunsArePackedIntoChunksOfAtMostTheChunkSize) {
  auto full = Backup(nullptr);
  ASSERT_TRUE(full.ok());
  const std::string before = disk_->bytes();
  // 4 KiB written in each of 24 ranges (96 KiB of runs: more than one 64 KiB pack), and one
  // more run of zeroes, which is recorded as zeroes and stored nowhere.
  std::vector<Extent> dirty;
  for (uint32_t i = 0; i < 24; ++i) {
    uint64_t at = uint64_t{i} * kChunk + 1000 + i * 512;
    disk_->Put(at, RandomBytes(4096, 500 + i));
    dirty.push_back({at, 4096, ExtentType::kData});
  }
  disk_->Put(30 * kChunk, std::string(8192, '\0'));
  dirty.push_back({30 * kChunk, 8192, ExtentType::kData});
  disk_->SetDirty(dirty);
  auto inc = Backup(&full->snapshot);
  ASSERT_TRUE(inc.ok()) << inc.status().message();
  const auto& d = inc->snapshot.disks[0];
  EXPECT_EQ(d.bytes_read, 24u * 4096u + 8192u);
  EXPECT_EQ(d.new_chunks, 2u);  // 16 runs fill the first pack, 8 go to the second
  bool zero_run = false;
  ASSERT_TRUE(ds_->ForEachManifestEntry(inc->snapshot, "vda",
                                        [&](const storage::ManifestEntry& e) {
                                          if (e.offset <= 30 * kChunk &&
                                              e.offset + e.length >= 30 * kChunk + 8192) {
                                            zero_run = e.kind == storage::ManifestEntryKind::kZero;
                                          }
                                          return Status::OK();
                                        })
                  .ok());
  EXPECT_TRUE(zero_run) << "the run of zeroes was not recorded as zeroes";
  std::map<storage::ChunkId, uint64_t> used;  // bytes each new chunk serves
  std::set<storage::ChunkId> old;
  ASSERT_TRUE(ds_->ForEachManifestEntry(full->snapshot, "vda",
                                        [&](const storage::ManifestEntry& e) {
                                          old.insert(e.chunk);
                                          return Status::OK();
                                        })
                  .ok());
  ASSERT_TRUE(ds_->ForEachManifestEntry(inc->snapshot, "vda",
                                        [&](const storage::ManifestEntry& e) {
                                          if (e.kind == storage::ManifestEntryKind::kChunk &&
                                              !old.count(e.chunk)) {
                                            used[e.chunk] += e.length;
                                            EXPECT_LE(e.chunk_offset + e.length, kChunk);
                                          }
                                          return Status::OK();
                                        })
                  .ok());
  ASSERT_EQ(used.size(), 2u);
  for (const auto& [id, bytes] : used) EXPECT_LE(bytes, kChunk);
  EXPECT_EQ(Restore(inc->snapshot), disk_->bytes());
  EXPECT_EQ(Restore(full->snapshot), before);
  auto dev = storage::OpenSnapshotDisk(*ds_, inc->snapshot, "vda", {});
  ASSERT_TRUE(dev.ok());
  std::string got(kSize, '\0');
  ReadRequest req{0, {got.data(), got.size()}};
  ASSERT_TRUE((*dev)->Read({&req, 1}).ok());
  EXPECT_EQ(got, disk_->bytes());
}

TEST_F(IncrementalTest, NothingDirtyReadsNothing) {
  auto full = Backup(nullptr);
  ASSERT_TRUE(full.ok());
  disk_->SetDirty({});
  auto inc = Backup(&full->snapshot);
  ASSERT_TRUE(inc.ok());
  EXPECT_EQ(inc->snapshot.disks[0].bytes_read, 0u);
  // Every chunk holding data was taken from the previous snapshot (holes are not "reused").
  EXPECT_EQ(inc->snapshot.disks[0].reused_bytes, 14u * kChunk + 5000u);
  EXPECT_EQ(inc->snapshot.disks[0].chunks, full->snapshot.disks[0].chunks);
  EXPECT_EQ(Restore(inc->snapshot), disk_->bytes());
}

TEST_F(IncrementalTest, DamagedBaseChunkIsReadAgainFromTheSource) {
  auto full = Backup(nullptr);
  ASSERT_TRUE(full.ok());
  const storage::ChunkId base = DamageChunkAt(full->snapshot, 3 * kChunk);
  // Most of the chunk changes, so the range is rebuilt from the base, which must be read.
  const uint32_t changed = RewriteMostOf(3 * kChunk);
  auto inc = Backup(&full->snapshot);
  ASSERT_TRUE(inc.ok()) << inc.status().message();
  EXPECT_EQ(inc->snapshot.disks[0].bytes_read, changed + kChunk);
  EXPECT_EQ(Restore(inc->snapshot), disk_->bytes());
  // The damaged chunk was moved aside, so a later backup of the same data can store it again.
  EXPECT_FALSE(*ds_->chunks().Contains(base));
}

// The source is let go while the last chunks are stored, but a merge that finds its base
// damaged reads its range from the source again: that must come first.
TEST_F(IncrementalTest, SourceIsLetGoOnlyAfterAMergeReadItsRangeAgain) {
  auto full = Backup(nullptr);
  ASSERT_TRUE(full.ok());
  DamageChunkAt(full->snapshot, 3 * kChunk);
  const uint32_t changed = RewriteMostOf(3 * kChunk);
  int calls = 0;
  uint64_t read_when_let_go = 0;
  sources_read_ = [&] {
    ++calls;
    read_when_let_go = last_->bytes_read();
  };
  auto inc = Backup(&full->snapshot);
  ASSERT_TRUE(inc.ok()) << inc.status().message();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(read_when_let_go, changed + kChunk);  // the changed run, then the whole range
  EXPECT_EQ(last_->bytes_read(), read_when_let_go);
  EXPECT_EQ(Restore(inc->snapshot), disk_->bytes());
}

// A pack chunk serves slices of several ranges. When a merge finds it damaged, ranges planned
// before that still keep it: that snapshot is refused, and the next backup, finding the chunk
// moved aside, reads those ranges from the source.
TEST_F(IncrementalTest, DamagedPackSharedByRangesIsNeverCommitted) {
  auto full = Backup(nullptr);
  ASSERT_TRUE(full.ok());
  disk_->Put(1 * kChunk + 1000, RandomBytes(512, 40));
  disk_->Put(5 * kChunk + 1000, RandomBytes(512, 41));
  disk_->SetDirty(
      {{1 * kChunk + 1000, 512, ExtentType::kData}, {5 * kChunk + 1000, 512, ExtentType::kData}});
  auto inc1 = Backup(&full->snapshot);
  ASSERT_TRUE(inc1.ok()) << inc1.status().message();
  storage::ChunkId pack;
  ASSERT_TRUE(ds_->ForEachManifestEntry(inc1->snapshot, "vda",
                                        [&](const storage::ManifestEntry& e) {
                                          if (e.offset == 1 * kChunk + 1000) pack = e.chunk;
                                          return Status::OK();
                                        })
                  .ok());
  std::filesystem::resize_file(ds_->chunks().Locate(pack), 100);
  // Range 1 keeps its slice of the pack (planned first, in disk order); range 5 changes so
  // much that it is merged, which decodes the pack and finds it damaged.
  const uint32_t changed = kChunk / 2 + 512;
  disk_->Put(6 * kChunk - changed, std::string(changed, 'q'));
  disk_->SetDirty({{6 * kChunk - changed, changed, ExtentType::kData}});
  auto refused = Backup(&inc1->snapshot);
  ASSERT_FALSE(refused.ok()) << "a snapshot naming a chunk moved aside was committed";
  EXPECT_NE(refused.status().message().find("run the backup again"), std::string::npos)
      << refused.status().message();
  auto again = Backup(&inc1->snapshot);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(Restore(again->snapshot), disk_->bytes());
}

TEST_F(IncrementalTest, FullWhenForcedResizedOrWithoutMap) {
  auto full = Backup(nullptr);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->snapshot.disks[0].full_reason, "no changed-block information for this disk");
  disk_->SetDirty({});
  auto forced = Backup(&full->snapshot, /*full=*/true);
  ASSERT_TRUE(forced.ok());
  EXPECT_FALSE(forced->snapshot.disks[0].incremental);
  EXPECT_EQ(forced->snapshot.disks[0].full_reason, "full backup requested");
  EXPECT_EQ(forced->snapshot.disks[0].bytes_read, full->snapshot.disks[0].bytes_read);

  auto bigger = std::make_unique<MemoryDisk>(kSize + kChunk);
  bigger->SetDirty({});
  std::vector<BackupDisk> disks;
  disks.push_back({"vda", std::move(bigger), ""});
  BackupOptions o;
  o.previous = &full->snapshot;
  auto resized = RunBackup(*ds_, "vm", disks, o);
  ASSERT_TRUE(resized.ok());
  EXPECT_NE(resized->snapshot.disks[0].full_reason.find("resized"), std::string::npos);
}

TEST_F(IncrementalTest, AnotherImageBehindTheDiskGetsAFull) {
  auto backup_with_identity = [&](const storage::SnapshotRecord* previous, const std::string& id) {
    auto copy = std::make_unique<MemoryDisk>(*disk_);
    disks_.clear();
    disks_.push_back({"vda", std::move(copy), "", id});
    BackupOptions o;
    o.previous = previous;
    return RunBackup(*ds_, "vm", disks_, o);
  };
  auto first = backup_with_identity(nullptr, "/images/a.qcow2");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->snapshot.disks[0].identity, "/images/a.qcow2");
  disk_->SetDirty({});
  auto same = backup_with_identity(&first->snapshot, "/images/a.qcow2");
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->snapshot.disks[0].incremental);
  auto swapped = backup_with_identity(&same->snapshot, "/images/b.qcow2");
  ASSERT_TRUE(swapped.ok());
  EXPECT_FALSE(swapped->snapshot.disks[0].incremental);
  EXPECT_NE(swapped->snapshot.disks[0].full_reason.find("disk now holds /images/b.qcow2"),
            std::string::npos);
}

TEST_F(IncrementalTest, MissingUnchangedChunkIsReadAgainFromTheSource) {
  auto full = Backup(nullptr);
  ASSERT_TRUE(full.ok());
  storage::ChunkId first;
  ASSERT_TRUE(ds_->ForEachManifestEntry(full->snapshot, "vda",
                                        [&](const storage::ManifestEntry& e) {
                                          if (e.offset == 0) first = e.chunk;
                                          return Status::OK();
                                        })
                  .ok());
  std::filesystem::remove(ds_->chunks().Locate(first));
  disk_->SetDirty({});
  auto inc = Backup(&full->snapshot);
  ASSERT_TRUE(inc.ok()) << inc.status().message();
  EXPECT_EQ(inc->snapshot.disks[0].bytes_read, kChunk);  // only the lost chunk
  EXPECT_EQ(inc->snapshot.disks[0].new_chunks, 1u);
  EXPECT_TRUE(*ds_->chunks().Contains(first));  // stored again: the full snapshot is whole again
  EXPECT_EQ(Restore(full->snapshot), disk_->bytes());
  EXPECT_EQ(Restore(inc->snapshot), disk_->bytes());
}

}  // namespace
}  // namespace offhost::proxy
