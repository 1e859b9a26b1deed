#include "offhost/storage/datastore.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "offhost/storage/chunk_codec.h"
#include "offhost/storage/read_lease.h"
#include "offhost/storage/snapshot_disk.h"
#include "offhost/storage/verify.h"
#include "test_util.h"

namespace offhost::storage {
namespace {

class DatastoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DatastoreConfig config;
    config.chunk_size = 64 * 1024;
    ASSERT_TRUE(Datastore::Init(dir_ / "ds", config).ok());
    auto ds = Datastore::Open(dir_ / "ds", true);
    ASSERT_TRUE(ds.ok()) << ds.status().message();
    ds_ = std::move(*ds);
  }

  // Commits a one-disk snapshot whose single chunk holds `data`.
  SnapshotRecord Commit(const std::string& vm, const std::string& data) {
    auto w = ds_->BeginSnapshot(vm);
    EXPECT_TRUE(w.ok()) << w.status().message();
    auto disk = (*w)->AddDisk("vda", "test", data.size() + 4096);
    ChunkId id = ChunkId::Of(data);
    ChunkEncoder enc;
    auto file = enc.Encode(id, data);
    EXPECT_TRUE(file.ok());
    EXPECT_TRUE(ds_->chunks().Put(id, *file).ok());
    EXPECT_TRUE((*disk)->Add({0, data.size(), ManifestEntryKind::kChunk, id}).ok());
    EXPECT_TRUE((*disk)->Add({data.size(), 4096, ManifestEntryKind::kUnallocated, {}}).ok());
    EXPECT_TRUE((*disk)->Finish({}).ok());
    auto rec = (*w)->Commit();
    EXPECT_TRUE(rec.ok()) << rec.status().message();
    return *rec;
  }

  testing::TempDir dir_;
  std::unique_ptr<Datastore> ds_;
};

TEST_F(DatastoreTest, CommittedSnapshotIsListedWithItsManifest) {
  SnapshotRecord rec = Commit("web01", "hello");
  auto list = ds_->ListSnapshots();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].id, rec.id);
  EXPECT_EQ((*list)[0].disks[0].size, 5u + 4096);
  std::vector<ManifestEntry> entries;
  ASSERT_TRUE(ds_->ForEachManifestEntry(rec, "vda",
                                        [&](const ManifestEntry& e) {
                                          entries.push_back(e);
                                          return Status::OK();
                                        })
                  .ok());
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].chunk, ChunkId::Of(std::string("hello")));
  EXPECT_EQ(ds_->FindSnapshot("web01", "latest")->id, rec.id);
}

TEST_F(DatastoreTest, SnapshotIdsStayUniqueWithinOneSecond) {
  SnapshotRecord a = Commit("vm", "a"), b = Commit("vm", "b"), c = Commit("vm", "c");
  EXPECT_LT(a.id, b.id);
  EXPECT_LT(b.id, c.id);
  EXPECT_EQ(ds_->FindSnapshot("vm", "latest")->id, c.id);
  EXPECT_EQ(ds_->ListSnapshots("vm")->size(), 3u);
  EXPECT_EQ(ds_->ListSnapshots("other")->size(), 0u);
}

// The index keys (docs/datastore-format.md) that start with `prefix`, read straight from RocksDB.
std::vector<std::string> IndexKeys(const std::filesystem::path& ds, const std::string& prefix) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Options options;
  EXPECT_TRUE(rocksdb::DB::OpenForReadOnly(options, (ds / "index").string(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::vector<std::string> keys;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    keys.push_back(it->key().ToString());
  }
  return keys;
}

TEST_F(DatastoreTest, DeletedSnapshotsAreGoneAndTheOthersStayWhole) {
  // Each snapshot with a stored VM configuration and a catalog record, like a VM backup's.
  auto commit = [&](const std::string& vm, const std::string& data) {
    auto w = ds_->BeginSnapshot(vm);
    EXPECT_TRUE(w.ok());
    SnapshotMeta meta;
    meta.vm_config = "<domain>" + vm + "</domain>";
    (*w)->SetMeta(meta);
    (*w)->SetCatalog(CatalogRecord{{"vda"}, {}});
    auto disk = (*w)->AddDisk("vda", "test", data.size());
    ChunkId id = ChunkId::Of(data);
    ChunkEncoder enc;
    auto file = enc.Encode(id, data);
    EXPECT_TRUE(file.ok());
    EXPECT_TRUE(ds_->chunks().Put(id, *file).ok());
    EXPECT_TRUE((*disk)->Add({0, data.size(), ManifestEntryKind::kChunk, id}).ok());
    EXPECT_TRUE((*disk)->Finish({}).ok());
    auto rec = (*w)->Commit();
    EXPECT_TRUE(rec.ok()) << rec.status().message();
    return *rec;
  };
  SnapshotRecord a = commit("vm", "first"), b = commit("vm", "second"), c = commit("vm", "third");
  SnapshotRecord other = commit("other", "first");
  for (const char* kind : {"s/", "m/", "c/", "f/"}) {
    ASSERT_EQ(IndexKeys(dir_ / "ds", std::string(kind) + "vm/" + a.id).size(), 1u) << kind;
  }
  ASSERT_TRUE(ds_->DeleteSnapshots({a, c}).ok());
  for (const auto& gone : {a, c}) {
    for (const char* kind : {"s/", "m/", "c/", "f/"}) {
      EXPECT_TRUE(IndexKeys(dir_ / "ds", std::string(kind) + "vm/" + gone.id).empty())
          << kind << gone.id;
    }
  }
  for (const char* kind : {"s/", "m/", "c/", "f/"}) {
    EXPECT_EQ(IndexKeys(dir_ / "ds", std::string(kind) + "vm/" + b.id).size(), 1u) << kind;
    EXPECT_EQ(IndexKeys(dir_ / "ds", std::string(kind) + "other/" + other.id).size(), 1u) << kind;
  }
  auto left = ds_->ListSnapshots();
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 2u);
  EXPECT_EQ(ds_->FindSnapshot("vm", "latest")->id, b.id);
  EXPECT_EQ(*ds_->GetVmConfig(b), "<domain>vm</domain>");
  // Chunks are garbage collection's business: the remaining snapshots verify whole.
  auto report = VerifyDatastore(*ds_, {});
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->snapshots_checked, 2u);
  EXPECT_TRUE(ds_->DeleteSnapshots({a}).ok());  // already gone: nothing to do
  SnapshotRecord bad = b;
  bad.id = "../other/" + other.id;
  EXPECT_FALSE(ds_->DeleteSnapshots({bad}).ok());
  EXPECT_EQ(ds_->ListSnapshots()->size(), 2u);
}

TEST_F(DatastoreTest, PruneKeepsASnapshotWhileItIsReadThenRemovesIt) {
  SnapshotRecord a = Commit("web01", "first"), b = Commit("web01", "second");
  {
    auto disk = OpenSnapshotDisk(*ds_, a, "vda");  // a restore, mount or export of `a`
    ASSERT_TRUE(disk.ok()) << disk.status().message();
    auto in_use = ds_->DeleteSnapshots({a, b});
    ASSERT_TRUE(in_use.ok()) << in_use.status().message();
    ASSERT_EQ(in_use->size(), 1u);
    EXPECT_EQ((*in_use)[0].id, a.id);
    auto left = ds_->ListSnapshots("web01");
    ASSERT_TRUE(left.ok());
    ASSERT_EQ(left->size(), 1u);
    EXPECT_EQ((*left)[0].id, a.id);
    std::string head(5, '\0');
    ReadRequest read{0, std::span<char>(head)};
    ASSERT_TRUE((*disk)->Read({&read, 1}).ok());  // still reads
    EXPECT_EQ(head, "first");
  }
  auto in_use = ds_->DeleteSnapshots({a});  // the reader is gone
  ASSERT_TRUE(in_use.ok()) << in_use.status().message();
  EXPECT_TRUE(in_use->empty());
  EXPECT_TRUE(ds_->ListSnapshots("web01")->empty());
  EXPECT_FALSE(std::filesystem::exists(ReadLeasePath(ds_->dir(), a)));
  // A reader that comes after the prune is told the snapshot is gone.
  auto late = SnapshotReadLease::Take(*ds_, a);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), StatusCode::kNotFound);
  EXPECT_NE(late.status().message().find("was removed (by a prune)"), std::string::npos)
      << late.status().message();
}

TEST_F(DatastoreTest, AbandonedSnapshotIsNeverVisibleAndLeavesNoStaging) {
  {
    auto w = ds_->BeginSnapshot("vm");
    ASSERT_TRUE(w.ok());
    auto disk = (*w)->AddDisk("vda", "test", 8192);
    ASSERT_TRUE((*disk)->Add({0, 4096, ManifestEntryKind::kZero, {}}).ok());
    // Destroyed without Commit: a failed or cancelled backup.
  }
  EXPECT_TRUE(ds_->ListSnapshots()->empty());
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "ds/tmp"));
}

TEST_F(DatastoreTest, CommitRefusesAnIncompleteDisk) {
  auto w = ds_->BeginSnapshot("vm");
  auto disk = (*w)->AddDisk("vda", "test", 8192);
  ASSERT_TRUE((*disk)->Add({0, 4096, ManifestEntryKind::kZero, {}}).ok());
  Status st = (*disk)->Finish({});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE((*w)->Commit().ok());
  EXPECT_TRUE(ds_->ListSnapshots()->empty());
}

TEST_F(DatastoreTest, UnknownNamesGiveActionableErrors) {
  Commit("vm", "x");
  auto missing_vm = ds_->FindSnapshot("nosuch", "latest");
  EXPECT_EQ(missing_vm.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing_vm.status().message().find("offhost snapshots"), std::string::npos);
  auto missing_id = ds_->FindSnapshot("vm", "2000-01-01T00:00:00Z");
  EXPECT_NE(missing_id.status().message().find("latest is"), std::string::npos);
  auto rec = ds_->FindSnapshot("vm", "latest");
  Status st =
      ds_->ForEachManifestEntry(*rec, "vdz", [](const ManifestEntry&) { return Status::OK(); });
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("it has: vda"), std::string::npos);
  EXPECT_EQ(ds_->BeginSnapshot("../etc").status().code(), StatusCode::kInvalidArgument);
}

// Manifest segments of format 2 are unreadable to offhost versions before it: a version-1
// datastore is marked version 2 by its first backup, so those refuse it by its version. Opens
// (read-only or for writing: verify, prune, GC) and other commands leave it as it is.
TEST(DatastoreOpen, VersionOneIsReadAndMarkedVersionTwoByABackup) {
  testing::TempDir dir;
  ASSERT_TRUE(Datastore::Init(dir / "ds", DatastoreConfig{}).ok());
  const std::string config = dir / "ds/offhost-datastore.json";
  auto read = [&] {
    std::ifstream in(config);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto write = [&](const std::string& text) { std::ofstream(config, std::ios::trunc) << text; };
  std::string v2 = read();
  ASSERT_NE(v2.find("\"version\": 2"), std::string::npos) << v2;
  std::string v1 = v2;
  v1.replace(v1.find("\"version\": 2"), 12, "\"version\": 1");
  write(v1);
  ASSERT_EQ(::chmod(config.c_str(), 0640), 0);

  ASSERT_TRUE(Datastore::Open(dir / "ds", /*for_writing=*/false).ok());
  auto ds = Datastore::Open(dir / "ds", /*for_writing=*/true);
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  EXPECT_EQ((*ds)->config().version, 1);
  EXPECT_EQ(read(), v1) << "opening must not change the datastore";
  auto w = (*ds)->BeginSnapshot("vm1");
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_NE(read().find("\"version\": 2"), std::string::npos) << read();
  struct stat st;
  ASSERT_EQ(::stat(config.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u) << "the config keeps its mode";
  for (const auto& e : std::filesystem::directory_iterator(dir / "ds")) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }

  std::string v3 = v2;
  v3.replace(v3.find("\"version\": 2"), 12, "\"version\": 3");
  write(v3);
  auto newer = Datastore::Open(dir / "ds", false);
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(newer.status().message().find("version 3"), std::string::npos)
      << newer.status().message();
  EXPECT_NE(newer.status().message().find("upgrade offhost"), std::string::npos);
}

TEST(DatastoreOpen, ExplainsMissingAndForeignDirectories) {
  testing::TempDir dir;
  auto missing = Datastore::Open(dir / "none", false);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("offhost datastore init"), std::string::npos);
  auto foreign = Datastore::Open(dir.path(), false);
  EXPECT_EQ(foreign.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(foreign.status().message().find("not an offhost datastore"), std::string::npos);
  std::ofstream(dir / "file") << "x";
  EXPECT_EQ(Datastore::Init(dir.path(), {}).code(), StatusCode::kAlreadyExists);
  DatastoreConfig bad;
  bad.chunk_size = 100000;
  EXPECT_EQ(Datastore::Init(dir / "new", bad).code(), StatusCode::kInvalidArgument);
}

TEST_F(DatastoreTest, VerifyNamesDamagedAndMissingChunksAndTheirUsers) {
  SnapshotRecord a = Commit("vm", std::string(3000, 'a'));
  SnapshotRecord b = Commit("vm", std::string(3000, 'b'));
  auto clean = VerifyDatastore(*ds_, {});
  ASSERT_TRUE(clean.ok());
  EXPECT_TRUE(clean->ok());
  EXPECT_EQ(clean->chunks_checked, 2u);

  ChunkId ida = ChunkId::Of(std::string(3000, 'a'));
  ChunkId idb = ChunkId::Of(std::string(3000, 'b'));
  {
    std::fstream f(ds_->chunks().Locate(ida), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(kChunkHeaderSize + 2));
    f.put('!');
  }
  std::filesystem::remove(ds_->chunks().Locate(idb));
  auto report = VerifyDatastore(*ds_, {});
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->damaged.size(), 2u);
  for (const auto& d : report->damaged) {
    ASSERT_EQ(d.uses.size(), 1u);
    EXPECT_EQ(d.uses[0].disk, "vda");
    EXPECT_EQ(d.uses[0].offsets, std::vector<uint64_t>{0});
    if (d.id == idb) {
      EXPECT_EQ(d.reason, "missing");
      EXPECT_EQ(d.uses[0].snapshot, b.id);
    } else {
      EXPECT_EQ(d.id, ida);
      EXPECT_NE(d.reason, "missing");
      EXPECT_EQ(d.uses[0].snapshot, a.id);
    }
  }
}

}  // namespace
}  // namespace offhost::storage
