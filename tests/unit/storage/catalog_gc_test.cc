// Garbage collection of catalog trees: a pruned snapshot's folders go unless another catalog
// reaches them, never while a backup runs, and not past a damaged catalog (docs/gc.md,
// "Catalog trees").
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <chrono>
#include <thread>

#include "offhost/storage/chunk_codec.h"
#include "offhost/storage/datastore.h"
#include "offhost/storage/gc.h"
#include "offhost/storage/verify.h"
#include "test_util.h"

namespace offhost::storage {
namespace {

CatalogEntry File(const std::string& name, uint64_t size) {
  CatalogEntry e;
  e.name = name;
  e.type = CatalogFileType::kRegular;
  e.size = size;
  e.extents = {{0, 1 << 20, size, 0}};
  return e;
}

// One volume: a root folder with `root_file` and a folder "etc" holding `etc_file`.
struct Folders {
  std::string root_file;
  std::string etc_file;
};

class CatalogGcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Datastore::Init(dir_ / "ds", {}).ok());
    auto ds = Datastore::Open(dir_ / "ds", true);
    ASSERT_TRUE(ds.ok()) << ds.status().message();
    ds_ = std::move(*ds);
  }

  // Stages the catalog of `f` in `w`; returns the root tree and the "etc" tree.
  std::pair<TreeId, TreeId> AddCatalog(SnapshotWriter& w, const Folders& f) {
    auto etc = w.AddCatalogTree({File(f.etc_file, 100)});
    EXPECT_TRUE(etc.ok()) << etc.status().message();
    CatalogEntry dir;
    dir.name = "etc";
    dir.type = CatalogFileType::kDirectory;
    dir.tree = *etc;
    auto root = w.AddCatalogTree({dir, File(f.root_file, 200)});
    EXPECT_TRUE(root.ok()) << root.status().message();
    CatalogVolume vol;
    vol.name = "vda1";
    vol.fs_type = "ext4";
    vol.root = *root;
    w.SetCatalog({{"vda"}, {vol}});
    auto disk = w.AddDisk("vda", "test", 4096);
    EXPECT_TRUE(disk.ok());
    EXPECT_TRUE((*disk)->Add({0, 4096, ManifestEntryKind::kUnallocated, {}}).ok());
    EXPECT_TRUE((*disk)->Finish({}).ok());
    return {*root, *etc};
  }

  SnapshotRecord Commit(std::unique_ptr<SnapshotWriter> w) {
    auto snap = w->Commit();
    EXPECT_TRUE(snap.ok()) << snap.status().message();
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // ids are per second
    return *snap;
  }

  std::unique_ptr<SnapshotWriter> Begin() {
    auto w = ds_->BeginSnapshot("vm");
    EXPECT_TRUE(w.ok()) << w.status().message();
    return std::move(*w);
  }

  SnapshotRecord CommitCatalog(const Folders& f, std::pair<TreeId, TreeId>* trees = nullptr) {
    auto w = Begin();
    auto t = AddCatalog(*w, f);
    if (trees) *trees = t;
    return Commit(std::move(w));
  }

  VerifyReport Verify() {
    auto v = VerifyDatastore(*ds_, {});
    EXPECT_TRUE(v.ok()) << v.status().message();
    return v.ok() ? *v : VerifyReport{};
  }

  GcReport Gc(GcOptions o = {}) {
    auto r = CollectGarbage(*ds_, o);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? *r : GcReport{};
  }

  bool TreeReadable(const TreeId& id) {
    auto reader = ds_->OpenCatalog();
    EXPECT_TRUE(reader.ok());
    return (*reader)->Tree(id).ok();
  }

  // The file names of snapshot `snap`'s catalog, read as `offhost ls` would: root, then etc.
  std::vector<std::string> Names(const SnapshotRecord& snap) {
    auto reader = std::move(*ds_->OpenCatalog());
    auto rec = reader->Record("vm", snap.id);
    if (!rec.ok() || !rec->has_value()) return {"(no catalog)"};
    auto root = reader->Tree(*(*rec)->volumes[0].root);
    if (!root.ok()) return {root.status().message()};
    std::vector<std::string> names;
    for (const CatalogEntry& e : **root) {
      names.push_back(e.name);
      if (!e.tree) continue;
      auto sub = reader->Tree(*e.tree);
      if (!sub.ok()) return {sub.status().message()};
      for (const CatalogEntry& s : **sub) names.push_back(e.name + "/" + s.name);
    }
    return names;
  }

  offhost::testing::TempDir dir_;
  std::unique_ptr<Datastore> ds_;
};

TEST_F(CatalogGcTest, RemovesTheTreesOnlyPrunedSnapshotsReached) {
  std::pair<TreeId, TreeId> a_trees, b_trees;
  SnapshotRecord a = CommitCatalog({"a.txt", "hosts"}, &a_trees);
  SnapshotRecord b = CommitCatalog({"b.txt", "hosts"}, &b_trees);
  ASSERT_EQ(a_trees.second, b_trees.second);  // "etc" did not change: one tree for both
  ASSERT_TRUE(ds_->DeleteSnapshots({a}).ok());

  GcOptions dry;
  dry.dry_run = true;
  GcReport counted = Gc(dry);
  EXPECT_EQ(counted.trees.trees, 3u);
  EXPECT_EQ(counted.trees.referenced, 2u);
  EXPECT_EQ(counted.trees.removed, 1u);
  EXPECT_GT(counted.trees.removed_bytes, 0u);
  EXPECT_TRUE(TreeReadable(a_trees.first));  // a dry run removes nothing

  GcReport r = Gc();
  EXPECT_EQ(r.trees.removed, 1u);
  EXPECT_EQ(r.trees.removed_bytes, counted.trees.removed_bytes);
  EXPECT_EQ(r.trees.kept_unused, 0u);
  EXPECT_TRUE(r.trees.not_collected.empty()) << r.trees.not_collected;
  EXPECT_FALSE(TreeReadable(a_trees.first));
  EXPECT_EQ(Names(b), (std::vector<std::string>{"b.txt", "etc", "etc/hosts"}));
  EXPECT_EQ(Gc().trees.removed, 0u);
  VerifyReport v = Verify();
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.catalog_trees_checked, 2u);

  // A later backup with a's catalog again stores its root once more.
  SnapshotRecord c = CommitCatalog({"a.txt", "hosts"});
  EXPECT_EQ(Names(c), (std::vector<std::string>{"a.txt", "etc", "etc/hosts"}));
  EXPECT_EQ(Gc().trees.removed, 0u);
}

// The hazard: a backup finds a tree in the index (so does not store it again) that only a
// pruned snapshot reached, and refers to it when it commits.
TEST_F(CatalogGcTest, KeepsUnusedTreesWhileABackupRunsThatMayReferToThem) {
  SnapshotRecord a = CommitCatalog({"a.txt", "hosts"});
  CommitCatalog({"b.txt", "passwd"});
  ASSERT_TRUE(ds_->DeleteSnapshots({a}).ok());

  auto running = Begin();
  AddCatalog(*running, {"a.txt", "hosts"});
  EXPECT_EQ(running->new_catalog_bytes(), 0u);  // found both of a's trees in the index
  GcOptions dry;
  dry.dry_run = true;
  GcReport counted = Gc(dry);  // says what a GC would do now: keep them
  EXPECT_EQ(counted.trees.removed, 0u);
  EXPECT_EQ(counted.trees.kept_unused, 2u);
  GcReport during = Gc();
  EXPECT_EQ(during.running_backups, 1u);
  EXPECT_EQ(during.trees.removed, 0u);
  EXPECT_EQ(during.trees.kept_unused, 2u);
  EXPECT_GT(during.trees.kept_unused_bytes, 0u);
  SnapshotRecord c = Commit(std::move(running));
  EXPECT_EQ(Names(c), (std::vector<std::string>{"a.txt", "etc", "etc/hosts"}));
  EXPECT_EQ(Gc().trees.removed, 0u);  // c reaches them now
}

// A snapshot committed between GC's mark and its delete (no backup is running any more when
// GC deletes) may reach trees that were unused at the mark.
TEST_F(CatalogGcTest, KeepsTreesASnapshotCommittedDuringGcReaches) {
  SnapshotRecord a = CommitCatalog({"a.txt", "hosts"});
  CommitCatalog({"b.txt", "passwd"});
  ASSERT_TRUE(ds_->DeleteSnapshots({a}).ok());
  {  // a chunk file, so that the chunk sweep (and its progress) comes between mark and delete
    const std::string data = "chunk";
    ChunkId id = ChunkId::Of(data);
    ChunkEncoder encoder;  // the encoded file lives in it
    auto file = encoder.Encode(id, data);
    ASSERT_TRUE(file.ok() && ds_->chunks().Put(id, *file).ok() && ds_->chunks().Sync().ok());
  }
  std::optional<SnapshotRecord> c;
  GcOptions o;
  o.progress = [&](const char* phase, uint64_t, uint64_t) {
    if (std::string(phase) == "sweep" && !c) c = CommitCatalog({"a.txt", "hosts"});
  };
  GcReport r = Gc(o);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(r.trees.removed, 0u);
  EXPECT_EQ(Names(*c), (std::vector<std::string>{"a.txt", "etc", "etc/hosts"}));
}

TEST_F(CatalogGcTest, ADamagedCatalogStopsTreeRemovalAndSaysWhich) {
  std::pair<TreeId, TreeId> b_trees;
  SnapshotRecord a = CommitCatalog({"a.txt", "hosts"});
  SnapshotRecord b = CommitCatalog({"b.txt", "passwd"}, &b_trees);
  ASSERT_TRUE(ds_->DeleteSnapshots({a}).ok());
  {  // b's "etc" folder lost from the index
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), (dir_ / "ds") + "/index", &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    const auto& bytes = b_trees.second.bytes;
    std::string key = "t/" + std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), key).ok());
  }
  auto r = CollectGarbage(*ds_, {});
  ASSERT_TRUE(r.ok()) << r.status().message();  // chunks are still collected
  EXPECT_EQ(r->trees.removed, 0u);
  EXPECT_NE(r->trees.not_collected.find(b_trees.second.Hex()), std::string::npos)
      << r->trees.not_collected;
  EXPECT_NE(r->trees.not_collected.find("vm@" + b.id), std::string::npos) << r->trees.not_collected;
  EXPECT_NE(r->trees.not_collected.find("run offhost verify"), std::string::npos);
  GcOptions dry;
  dry.dry_run = true;
  auto counted = CollectGarbage(*ds_, dry);
  ASSERT_TRUE(counted.ok());
  EXPECT_EQ(counted->trees.removed, 0u);
  EXPECT_FALSE(counted->trees.not_collected.empty());

  VerifyReport v = Verify();  // and verify names it
  EXPECT_FALSE(v.ok());
  ASSERT_EQ(v.damaged_catalogs.size(), 1u);
  EXPECT_EQ(v.damaged_catalogs[0].snapshot, b.id);
  EXPECT_EQ(v.damaged_catalogs[0].tree, b_trees.second.Hex());
  EXPECT_NE(v.damaged_catalogs[0].reason.find("missing"), std::string::npos)
      << v.damaged_catalogs[0].reason;
}

}  // namespace
}  // namespace offhost::storage
