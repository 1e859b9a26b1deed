#include "offhost/storage/datastore.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "offhost/storage/chunk_codec.h"
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
    std::string file;
    EXPECT_TRUE(enc.Encode(id, data, &file).ok());
    EXPECT_TRUE(ds_->chunks().Put(id, file).ok());
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
  ASSERT_TRUE(ds_->ForEachManifestEntry(rec, "vda", [&](const ManifestEntry& e) {
    entries.push_back(e);
    return Status::OK();
  }).ok());
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

TEST_F(DatastoreTest, DeletedSnapshotsAreGoneAndTheOthersStayWhole) {
  SnapshotRecord a = Commit("vm", "first"), b = Commit("vm", "second"), c = Commit("vm", "third");
  SnapshotRecord other = Commit("other", "first");
  ASSERT_TRUE(ds_->DeleteSnapshots({a, c}).ok());
  auto left = ds_->ListSnapshots();
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 2u);
  EXPECT_EQ((*left)[0].vm, "other");
  EXPECT_EQ((*left)[1].id, b.id);
  EXPECT_FALSE(ds_->OpenManifest(a, "vda").ok());  // its manifest went with it
  EXPECT_EQ(ds_->FindSnapshot("vm", "latest")->id, b.id);
  // The chunk "first" is still used by the other VM's snapshot and was not touched; verify
  // finds every remaining snapshot whole.
  std::vector<ManifestEntry> entries;
  ASSERT_TRUE(ds_->ForEachManifestEntry(other, "vda", [&](const ManifestEntry& e) {
    entries.push_back(e);
    return Status::OK();
  }).ok());
  EXPECT_TRUE(*ds_->chunks().Contains(entries[0].chunk));
  EXPECT_TRUE(ds_->DeleteSnapshots({a}).ok());  // already gone: nothing to do
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
  Status st = ds_->ForEachManifestEntry(*rec, "vdz", [](const ManifestEntry&) {
    return Status::OK();
  });
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("it has: vda"), std::string::npos);
  EXPECT_EQ(ds_->BeginSnapshot("../etc").status().code(), StatusCode::kInvalidArgument);
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
