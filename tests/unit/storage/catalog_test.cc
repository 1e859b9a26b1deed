// Catalog trees: the codec, and their storage in the index (stored once however many
// snapshots hold them).
#include "offhost/storage/catalog.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "offhost/storage/datastore.h"
#include "test_util.h"

namespace offhost::storage {
namespace {

CatalogEntry File(const std::string& name, uint64_t size) {
  CatalogEntry e;
  e.name = name;
  e.type = CatalogFileType::kRegular;
  e.size = size;
  e.mode = 0640;
  e.uid = 1000;
  e.gid = 100;
  e.mtime = 1700000000;
  e.atime = 1700000100;
  e.ctime = 1699999000;
  e.extents = {{0, 1 << 20, 4096, 0}, {8192, 5 << 20, size - 8192, 1}};
  return e;
}

TEST(CatalogTree, RoundTripsSortedWithEveryField) {
  CatalogEntry dir;
  dir.name = "etc";
  dir.type = CatalogFileType::kDirectory;
  dir.tree = ChunkId::Of(std::string("child"));
  CatalogEntry link;
  link.name = "link";
  link.type = CatalogFileType::kSymlink;
  link.link_target = "/etc/passwd";
  link.mtime = -5;  // before 1970: some guests have such files
  auto decoded = DecodeTree(EncodeTree({File("z.bin", 20000), dir, link, File("Grüße.txt", 9000)}));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  ASSERT_EQ(decoded->size(), 4u);
  EXPECT_EQ((*decoded)[0].name, "Grüße.txt");
  EXPECT_EQ((*decoded)[1], dir);
  EXPECT_EQ((*decoded)[2], link);
  EXPECT_EQ((*decoded)[3], File("z.bin", 20000));
}

TEST(CatalogTree, RejectsDamageAndUnsafeNames) {
  std::string good = EncodeTree({File("a", 10000), File("b", 10000)});
  for (size_t cut = 0; cut < good.size(); ++cut) {
    EXPECT_FALSE(DecodeTree({good.data(), cut}).ok()) << "truncated at " << cut;
  }
  EXPECT_FALSE(DecodeTree(good + "x").ok());
  for (const char* bad : {"..", ".", "a/b", ""}) {
    EXPECT_FALSE(DecodeTree(EncodeTree({File(bad, 10000)})).ok()) << bad;
    EXPECT_FALSE(IsCatalogName(bad));
  }
  EXPECT_FALSE(IsCatalogName(std::string("a\0b", 3)));
  EXPECT_EQ(DecodeTree(std::string("\x07\x00", 2)).status().code(), StatusCode::kCorruption);
}

TEST(CatalogStore, AnUnchangedTreeIsStoredOnceAcrossSnapshots) {
  offhost::testing::TempDir dir;
  ASSERT_TRUE(Datastore::Init(dir / "ds", {}).ok());
  auto ds = std::move(*Datastore::Open(dir / "ds", true));
  auto commit = [&](uint64_t size, uint64_t* added) {
    auto w = std::move(*ds->BeginSnapshot("vm"));
    auto leaf = w->AddCatalogTree({File("big.db", size), File("small", 10000)});
    EXPECT_TRUE(leaf.ok());
    CatalogEntry sub;
    sub.name = "data";
    sub.type = CatalogFileType::kDirectory;
    sub.tree = *leaf;
    auto root = w->AddCatalogTree({sub, File("unchanged.conf", 10000)});
    CatalogRecord rec;
    rec.disks = {"vda", "vdb"};
    CatalogVolume vol;
    vol.name = "vda1";
    vol.fs_type = "ext4";
    vol.root = *root;
    rec.volumes = {vol};
    w->SetCatalog(rec);
    auto disk = std::move(*w->AddDisk("vda", "test", 4096));
    EXPECT_TRUE(disk->Add({0, 4096, ManifestEntryKind::kUnallocated, {}}).ok());
    EXPECT_TRUE(disk->Finish({}).ok());
    *added = w->new_catalog_bytes();
    auto snap = w->Commit();
    EXPECT_TRUE(snap.ok()) << snap.status().message();
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // ids are per second
    return *snap;
  };
  uint64_t first = 0, second = 0, third = 0;
  SnapshotRecord a = commit(50000, &first);
  SnapshotRecord b = commit(50000, &second);
  SnapshotRecord c = commit(60000, &third);
  EXPECT_GT(first, 0u);
  EXPECT_EQ(second, 0u);  // nothing changed: nothing added
  EXPECT_GT(third, 0u);   // one file changed: its folder and the root are new
  EXPECT_LT(third, first * 2);

  auto reader = std::move(*ds->OpenCatalog());
  auto rec = reader->Record("vm", c.id);
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->disks, (std::vector<std::string>{"vda", "vdb"}));
  auto root = reader->Tree(*(*rec)->volumes[0].root);
  ASSERT_TRUE(root.ok());
  auto data = reader->Tree(*(**root)[0].tree);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ((**data)[0], File("big.db", 60000));
  auto none = reader->Record("vm", "2000-01-01T00:00:00Z");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  (void)a;
  (void)b;
}

}  // namespace
}  // namespace offhost::storage
