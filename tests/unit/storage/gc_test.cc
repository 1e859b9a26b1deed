// Garbage collection: the mark set, mark and sweep, claims by running backups, the directory
// lock between a claim and a delete, temporary files (docs/gc.md).
#include "offhost/storage/gc.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>

#include "offhost/storage/chunk_codec.h"
#include "offhost/storage/chunk_id_set.h"
#include "offhost/storage/verify.h"
#include "test_util.h"

namespace offhost::storage {
namespace {

ChunkId RandomId(std::mt19937_64& rng) {
  ChunkId id;
  for (auto& b : id.bytes) b = static_cast<uint8_t>(rng());
  return id;
}

TEST(ChunkIdSetTest, HoldsEveryIdAddedThroughCompactionsAndFewOthers) {
  std::mt19937_64 rng(7);
  std::vector<ChunkId> ids;
  for (int i = 0; i < 50000; ++i) ids.push_back(RandomId(rng));
  ChunkIdSet set;
  for (int round = 0; round < 4; ++round) {  // every snapshot names the chunks again
    for (const auto& id : ids) set.Add(id);
  }
  set.Seal();
  EXPECT_EQ(set.size(), ids.size());
  EXPECT_LE(set.memory_bytes(), ids.size() * 8 + 64);
  for (const auto& id : ids) ASSERT_TRUE(set.MayContain(id));
  int false_positives = 0;
  for (int i = 0; i < 100000; ++i) false_positives += set.MayContain(RandomId(rng)) ? 1 : 0;
  EXPECT_EQ(false_positives, 0);
}

// Sets a file's time `seconds` into the past, as if written then.
void Backdate(const std::string& path, int seconds) {
  struct timespec ts[2];
  ::clock_gettime(CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= seconds;
  ts[1] = ts[0];
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, 0), 0) << path;
}

class GcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DatastoreConfig config;
    config.chunk_size = 64 * 1024;
    ASSERT_TRUE(Datastore::Init(dir_ / "ds", config).ok());
    auto ds = Datastore::Open(dir_ / "ds", true);
    ASSERT_TRUE(ds.ok()) << ds.status().message();
    ds_ = std::move(*ds);
  }

  ChunkId Store(const std::string& data) {
    ChunkId id = ChunkId::Of(data);
    ChunkEncoder enc;
    auto file = enc.Encode(id, data);
    EXPECT_TRUE(file.ok());
    EXPECT_TRUE(ds_->chunks().Put(id, *file).ok());
    EXPECT_TRUE(ds_->chunks().Sync().ok());
    return id;
  }

  // Commits a one-disk snapshot made of one chunk per string.
  SnapshotRecord Commit(const std::string& vm, const std::vector<std::string>& chunks) {
    auto w = ds_->BeginSnapshot(vm);
    EXPECT_TRUE(w.ok()) << w.status().message();
    uint64_t size = 0;
    for (const auto& c : chunks) size += c.size();
    auto disk = (*w)->AddDisk("vda", "test", size);
    uint64_t at = 0;
    for (const auto& c : chunks) {
      EXPECT_TRUE((*disk)->Add({at, c.size(), ManifestEntryKind::kChunk, Store(c)}).ok());
      at += c.size();
    }
    EXPECT_TRUE((*disk)->Finish({}).ok());
    auto rec = (*w)->Commit();
    EXPECT_TRUE(rec.ok()) << rec.status().message();
    return *rec;
  }

  std::filesystem::path Root() { return std::filesystem::path(std::string(dir_ / "ds")); }
  bool Present(const ChunkId& id) { return std::filesystem::exists(ds_->chunks().Locate(id)); }
  void BackdateAll(int seconds) {
    for (auto& e : std::filesystem::recursive_directory_iterator(Root() / "chunks")) {
      if (e.is_regular_file()) Backdate(e.path(), seconds);
    }
  }
  GcReport Gc(GcOptions o = {}) {
    auto r = CollectGarbage(*ds_, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : GcReport{};
  }
  void ExpectVerifyClean() {
    auto v = VerifyDatastore(*ds_, {});
    ASSERT_TRUE(v.ok()) << v.status().message();
    EXPECT_TRUE(v->ok());
  }

  testing::TempDir dir_;
  std::unique_ptr<Datastore> ds_;
};

TEST_F(GcTest, RemovesOnlyChunksOfDeletedSnapshotsOlderThanTheMinimumAge) {
  SnapshotRecord a = Commit("vm", {"shared", "only-a"});
  Commit("vm", {"shared", "only-b"});
  ASSERT_TRUE(ds_->DeleteSnapshots({a}).ok());
  const ChunkId shared = ChunkId::Of(std::string("shared")),
                only_a = ChunkId::Of(std::string("only-a")),
                only_b = ChunkId::Of(std::string("only-b"));

  GcReport young = Gc();  // default: 5 minutes
  EXPECT_EQ(young.sweep.removed, 0u);
  EXPECT_EQ(young.sweep.recent, 1u);

  BackdateAll(3600);
  GcOptions dry;
  dry.dry_run = true;
  GcReport counted = Gc(dry);
  EXPECT_EQ(counted.sweep.removed, 1u);
  EXPECT_TRUE(Present(only_a));

  GcReport r = Gc();
  EXPECT_EQ(r.snapshots, 1u);
  EXPECT_EQ(r.referenced_chunks, 2u);
  EXPECT_EQ(r.sweep.chunks, 3u);
  EXPECT_EQ(r.sweep.referenced, 2u);
  EXPECT_EQ(r.sweep.removed, 1u);
  EXPECT_EQ(r.sweep.removed_bytes, counted.sweep.removed_bytes);
  EXPECT_FALSE(Present(only_a));
  EXPECT_TRUE(Present(shared));
  EXPECT_TRUE(Present(only_b));
  EXPECT_EQ(Gc().sweep.removed, 0u);
  ExpectVerifyClean();
}

// Rewrites every manifest segment of `snap` in format 1, as offhost wrote it before format 2.
void RewriteManifestsInFormat1(const std::filesystem::path& ds, const SnapshotRecord& snap) {
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), (ds / "index").string(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  const std::string prefix = "m/" + snap.vm + "/" + snap.id + "/";
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  rocksdb::WriteBatch batch;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    ASSERT_EQ(static_cast<uint8_t>(it->value()[0]), 0xF2);  // written in format 2
    auto entries = DecodeManifestSegment({it->value().data(), it->value().size()});
    ASSERT_TRUE(entries.ok()) << entries.status().message();
    std::string v1;
    for (const ManifestEntry& e : *entries) AppendManifestEntryV1(e, &v1);
    batch.Put(it->key(), v1);
  }
  ASSERT_GT(batch.Count(), 0u);
  ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
}

// Datastores written before manifest format 2 keep working: their snapshots list, read, verify
// and keep their chunks through garbage collection, next to snapshots in format 2.
// A prune and a garbage collection while verify runs (after its chunk scan, before it reads
// the manifests of the snapshots it listed): the pruned snapshot's collected chunks are not
// damage, and a damaged chunk of a snapshot that stays is still found.
TEST_F(GcTest, VerifyIsNotFooledByAPruneAndCollectionWhileItRuns) {
  SnapshotRecord a = Commit("vm", {"shared", "only-a"});
  Commit("vm", {"shared", "only-b"});
  const ChunkId only_a = ChunkId::Of(std::string("only-a")),
                only_b = ChunkId::Of(std::string("only-b"));
  BackdateAll(3600);
  auto run_verify_with_prune = [&] {
    VerifyOptions o;
    bool pruned = false;
    o.progress = [&](uint64_t done, uint64_t total) {
      if (done != total || pruned) return;
      pruned = true;
      ASSERT_TRUE(ds_->DeleteSnapshots({a}).ok());
      GcReport r = Gc();
      EXPECT_EQ(r.sweep.removed, 1u);
    };
    auto v = VerifyDatastore(*ds_, o);
    EXPECT_TRUE(pruned);
    return v;
  };
  auto v = run_verify_with_prune();
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_FALSE(Present(only_a));
  EXPECT_TRUE(v->ok()) << v->damaged.size()
                       << " damaged, first: " << (v->damaged.empty() ? "" : v->damaged[0].reason);
  EXPECT_EQ(v->snapshots_checked, 1u);

  // The same race where the snapshot that stays has lost a chunk: that is still reported.
  a = Commit("vm", {"shared", "only-a"});
  BackdateAll(3600);
  ASSERT_TRUE(std::filesystem::remove(ds_->chunks().Locate(only_b)));
  v = run_verify_with_prune();
  ASSERT_TRUE(v.ok()) << v.status().message();
  ASSERT_EQ(v->damaged.size(), 1u);
  EXPECT_EQ(v->damaged[0].id, only_b);
  EXPECT_EQ(v->damaged[0].reason, "missing");
}

TEST_F(GcTest, SnapshotsWithFormat1ManifestsStayReadableAndKeepTheirChunks) {
  SnapshotRecord old = Commit("vm", {"shared", "only-old", "tail"});
  RewriteManifestsInFormat1(Root(), old);
  SnapshotRecord gone = Commit("vm", {"shared", "only-gone"});
  std::vector<ChunkId> read;
  ASSERT_TRUE(ds_->ForEachManifestEntry(old, "vda",
                                        [&](const ManifestEntry& e) {
                                          read.push_back(e.chunk);
                                          return Status::OK();
                                        })
                  .ok());
  const std::vector<ChunkId> want = {ChunkId::Of(std::string("shared")),
                                     ChunkId::Of(std::string("only-old")),
                                     ChunkId::Of(std::string("tail"))};
  EXPECT_EQ(read, want);
  ExpectVerifyClean();

  ASSERT_TRUE(ds_->DeleteSnapshots({gone}).ok());
  BackdateAll(3600);
  GcReport r = Gc();
  EXPECT_EQ(r.referenced_chunks, 3u);
  EXPECT_EQ(r.sweep.removed, 1u);
  for (const ChunkId& id : want) EXPECT_TRUE(Present(id)) << id.ShortHex();
  EXPECT_FALSE(Present(ChunkId::Of(std::string("only-gone"))));
  ExpectVerifyClean();
}

// A running backup's claims (Contains, IsStored) keep chunks no snapshot uses; its start holds
// the cut-off back; chunks it did not claim still go.
TEST_F(GcTest, ChunksClaimedByARunningBackupAreKept) {
  SnapshotRecord old = Commit("vm", {"dedupe-me", "base-of-incremental", "unclaimed"});
  Commit("vm", {"newer"});
  ASSERT_TRUE(ds_->DeleteSnapshots({old}).ok());
  BackdateAll(3600);
  auto writer = ds_->BeginSnapshot("other");
  ASSERT_TRUE(writer.ok());
  EXPECT_TRUE(*ds_->chunks().Contains(ChunkId::Of(std::string("dedupe-me"))));
  EXPECT_TRUE(*ds_->chunks().IsStored(ChunkId::Of(std::string("base-of-incremental"))));

  GcOptions o;
  o.min_age_seconds = 0;
  GcReport r = Gc(o);
  EXPECT_EQ(r.running_backups, 1u);
  EXPECT_EQ(r.sweep.removed, 1u);
  EXPECT_TRUE(Present(ChunkId::Of(std::string("dedupe-me"))));
  EXPECT_TRUE(Present(ChunkId::Of(std::string("base-of-incremental"))));
  EXPECT_FALSE(Present(ChunkId::Of(std::string("unclaimed"))));
  writer->reset();  // aborted: its claims protect nothing any more once they age
  BackdateAll(3600);
  EXPECT_EQ(Gc(o).sweep.removed, 2u);
  ExpectVerifyClean();
}

// GC's check and delete of a chunk and a backup's claim of it never interleave: a claim that
// comes while GC holds the directory waits, then finds the chunk gone (and the backup writes
// it again) rather than believing in a file about to vanish.
TEST_F(GcTest, AClaimDuringTheDeleteWaitsAndSeesTheChunkGone) {
  SnapshotRecord old = Commit("vm", {"contested"});
  Commit("vm", {"newer"});
  ASSERT_TRUE(ds_->DeleteSnapshots({old}).ok());
  BackdateAll(3600);
  const ChunkId id = ChunkId::Of(std::string("contested"));
  auto store = OpenLocalChunkStore((Root() / "chunks").string());  // another backup
  ASSERT_TRUE(store.ok());
  ChunkStore* other = store->get();
  std::future<Result<bool>> claim;
  GcOptions o;
  o.min_age_seconds = 0;
  o.before_delete = [&](const ChunkId& deleting) {
    ASSERT_EQ(deleting, id);
    claim = std::async(std::launch::async,
                       [other, id]() -> Result<bool> { return other->Contains(id); });
    EXPECT_EQ(claim.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
        << "the claim did not wait for GC's lock";
  };
  EXPECT_EQ(Gc(o).sweep.removed, 1u);
  ASSERT_TRUE(claim.valid());
  Result<bool> present = claim.get();
  ASSERT_TRUE(present.ok());
  EXPECT_FALSE(*present);
  EXPECT_FALSE(Present(id));
}

TEST_F(GcTest, TemporaryFilesOfStoppedWritersGoThoseOfLiveOnesStay) {
  Commit("vm", {"x"});
  const ChunkId id = ChunkId::Of(std::string("x"));
  const std::string path = ds_->chunks().Locate(id);
  const std::string dead = path + ".tmp.999999999.0",
                    live = path + ".tmp." + std::to_string(::getpid()) + ".1";
  std::ofstream(dead) << "partial";
  std::ofstream(live) << "partial";
  BackdateAll(3600);
  GcOptions o;
  o.min_age_seconds = 0;
  GcReport r = Gc(o);
  EXPECT_EQ(r.sweep.temporary_removed, 1u);
  EXPECT_EQ(r.sweep.removed, 0u);
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(live));
  EXPECT_TRUE(Present(id));
}

TEST_F(GcTest, DryRunCutoffMatchesTheRunningBackups) {
  auto now = static_cast<int64_t>(std::time(nullptr));
  auto c = GcCutoff(*ds_, 60);
  ASSERT_TRUE(c.ok());
  EXPECT_NEAR(static_cast<double>(*c), static_cast<double>(now - 60), 2.0);
}

}  // namespace
}  // namespace offhost::storage
