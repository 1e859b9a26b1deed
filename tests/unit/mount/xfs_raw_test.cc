// The XFS structures read beside libfsxfs: geometry, inode times in both encodings, and the
// extent map in extents and btree form (mkfs.xfs -p cannot make a btree-form file: it damages
// the file system when a file outgrows an allocation group, so this one is built by hand).
#include "xfs_raw.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace offhost::mount::internal {
namespace {

using offhost::testing::MemoryDisk;

void PutBe(std::string* s, size_t off, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) (*s)[off + i] = static_cast<char>(v >> (8 * (n - 1 - i)));
}

constexpr uint32_t kBlock = 4096;
constexpr uint32_t kAgBlocks = 16;  // agblklog 4
constexpr uint16_t kInode = 512;    // inopblog 3

std::string Superblock(uint32_t agcount = 4) {
  std::string sb(512, '\0');
  std::memcpy(sb.data(), "XFSB", 4);
  PutBe(&sb, 4, kBlock, 4);
  PutBe(&sb, 8, kAgBlocks * agcount, 8);
  PutBe(&sb, 84, kAgBlocks, 4);
  PutBe(&sb, 88, agcount, 4);
  PutBe(&sb, 100, 0xb4a5, 2);  // v5
  PutBe(&sb, 104, kInode, 2);
  PutBe(&sb, 106, kBlock / kInode, 2);
  sb[123] = 3;
  sb[124] = 4;
  return sb;
}

uint64_t FsBlock(uint64_t agno, uint64_t agbno) { return agno << 4 | agbno; }

void PutRecord(std::string* s, size_t off, const XfsExtent& e) {
  uint64_t l0 = (uint64_t{e.unwritten} << 63) | (e.file_block << 9) | (e.disk_block >> 43);
  uint64_t l1 = (e.disk_block << 21) | e.blocks;
  PutBe(s, off, l0, 8);
  PutBe(s, off + 8, l1, 8);
}

class XfsRawTest : public ::testing::Test {
 protected:
  XfsRawTest() : disk_(uint64_t{kAgBlocks} * 4 * kBlock) {
    disk_.Put(0, Superblock());
    geo_ = *ParseXfsSuperblock(Superblock());
  }
  // Inode 147 = AG 1, block 2, slot 3.
  static constexpr uint64_t kIno = (1 << 7) | (2 << 3) | 3;
  uint64_t InodeByte() const { return (1 * kAgBlocks + 2) * kBlock + 3 * kInode; }

  std::string Inode(uint8_t version, uint8_t format, uint64_t flags2) {
    std::string in(kInode, '\0');
    std::memcpy(in.data(), "IN", 2);
    PutBe(&in, 2, 0100644, 2);
    in[4] = static_cast<char>(version);
    in[5] = static_cast<char>(format);
    PutBe(&in, 8, 1000, 4);
    PutBe(&in, 12, 1001, 4);
    PutBe(&in, 56, 100 * kBlock, 8);
    if (version >= 3) PutBe(&in, 120, flags2, 8);
    return in;
  }

  MemoryDisk disk_;
  XfsGeometry geo_;
};

TEST_F(XfsRawTest, ParsesGeometryAndRejectsNonsense) {
  EXPECT_EQ(geo_.block_size, kBlock);
  EXPECT_EQ(geo_.ag_blocks, kAgBlocks);
  EXPECT_EQ(geo_.ag_blk_log, 4);
  EXPECT_EQ(geo_.inop_blog, 3);
  EXPECT_TRUE(geo_.v5);
  std::string none(512, '\0');
  EXPECT_EQ(ParseXfsSuperblock(none).status().code(), StatusCode::kNotFound);
  std::string bad = Superblock();
  PutBe(&bad, 4, 3000, 4);  // not a power of two
  EXPECT_EQ(ParseXfsSuperblock(bad).status().code(), StatusCode::kCorruption);
}

TEST_F(XfsRawTest, ReadsBothTimestampEncodings) {
  std::string in = Inode(3, 2, 1u << 3);  // bigtime: ns since 1901-12-13T20:45:52Z
  PutBe(&in, 40, (uint64_t{1700000000} + 2147483648ull) * 1000000000ull + 999999999, 8);
  PutBe(&in, 32, 0, 8);  // the bigtime epoch
  disk_.Put(InodeByte(), in);
  XfsRaw raw(disk_, geo_);
  auto ino = raw.ReadInode(kIno);
  ASSERT_TRUE(ino.ok()) << ino.status().message();
  EXPECT_EQ(ino->mtime, 1700000000);
  EXPECT_EQ(ino->atime, -2147483648ll);
  EXPECT_EQ(ino->mode, 0100644);
  EXPECT_EQ(ino->uid, 1000u);
  EXPECT_EQ(ino->gid, 1001u);
  EXPECT_EQ(ino->data_fork.size(), kInode - 176u);

  std::string old = Inode(2, 2, 0);  // classic: s32 seconds, u32 nanoseconds
  PutBe(&old, 40, static_cast<uint32_t>(-86400), 4);
  PutBe(&old, 44, 5, 4);
  disk_.Put(InodeByte(), old);
  ino = raw.ReadInode(kIno);
  ASSERT_TRUE(ino.ok());
  EXPECT_EQ(ino->mtime, -86400);
  EXPECT_EQ(ino->data_fork.size(), kInode - 100u);

  EXPECT_FALSE(raw.ReadInode((uint64_t{9} << 7)).ok());  // AG 9 does not exist
}

TEST_F(XfsRawTest, ReadsExtentsFromTheInodeAndFromABtree) {
  std::vector<XfsExtent> want = {{0, FsBlock(0, 8), 10, false},
                                 {10, FsBlock(3, 1), 5, true},
                                 {20, FsBlock(1, 9), 4, false}};
  std::string in = Inode(3, 2, 0);
  PutBe(&in, 76, want.size(), 4);
  for (size_t i = 0; i < want.size(); ++i) PutRecord(&in, 176 + i * 16, want[i]);
  disk_.Put(InodeByte(), in);
  XfsRaw raw(disk_, geo_);
  auto check = [&](const char* what) {
    auto ino = raw.ReadInode(kIno);
    ASSERT_TRUE(ino.ok()) << what;
    auto got = raw.DataExtents(*ino);
    ASSERT_TRUE(got.ok()) << what << ": " << got.status().message();
    ASSERT_EQ(got->size(), want.size()) << what;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ((*got)[i].file_block, want[i].file_block) << what;
      EXPECT_EQ((*got)[i].disk_block, want[i].disk_block) << what;
      EXPECT_EQ((*got)[i].blocks, want[i].blocks) << what;
      EXPECT_EQ((*got)[i].unwritten, want[i].unwritten) << what;
    }
  };
  check("extents form");
  EXPECT_EQ(*raw.BlockOffset(FsBlock(3, 1)), (3 * kAgBlocks + 1) * uint64_t{kBlock});

  // Btree form: root in the inode (level 2) -> node (level 1) -> two leaves.
  std::string bt = Inode(3, 3, 0);
  PutBe(&bt, 76, want.size(), 4);
  size_t maxrecs = (kInode - 176 - 4) / 16;
  PutBe(&bt, 176, 2, 2);
  PutBe(&bt, 178, 1, 2);
  PutBe(&bt, 176 + 4 + maxrecs * 8, FsBlock(2, 3), 8);
  disk_.Put(InodeByte(), bt);
  auto block = [](int level, int n) {
    std::string b(kBlock, '\0');
    std::memcpy(b.data(), "BMA3", 4);
    PutBe(&b, 4, level, 2);
    PutBe(&b, 6, n, 2);
    return b;
  };
  std::string node = block(1, 2);
  size_t node_max = (kBlock - 72) / 16;
  PutBe(&node, 72 + node_max * 8, FsBlock(2, 4), 8);
  PutBe(&node, 72 + node_max * 8 + 8, FsBlock(2, 5), 8);
  disk_.Put((2 * kAgBlocks + 3) * uint64_t{kBlock}, node);
  std::string leaf1 = block(0, 2), leaf2 = block(0, 1);
  PutRecord(&leaf1, 72, want[0]);
  PutRecord(&leaf1, 88, want[1]);
  PutRecord(&leaf2, 72, want[2]);
  disk_.Put((2 * kAgBlocks + 4) * uint64_t{kBlock}, leaf1);
  disk_.Put((2 * kAgBlocks + 5) * uint64_t{kBlock}, leaf2);
  check("btree form");

  // A damaged btree is reported, not followed: a leaf that claims to be a node, a loop.
  std::string loop = block(1, 1);
  PutBe(&loop, 72 + node_max * 8, FsBlock(2, 3), 8);
  disk_.Put((2 * kAgBlocks + 4) * uint64_t{kBlock}, loop);
  auto ino = raw.ReadInode(kIno);
  ASSERT_TRUE(ino.ok());
  EXPECT_EQ(raw.DataExtents(*ino).status().code(), StatusCode::kCorruption);
}

}  // namespace
}  // namespace offhost::mount::internal
