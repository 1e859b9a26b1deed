// ext4 extent trees and directory blocks read without libtsk (mount/src/ext4_raw.h).
#include "ext4_raw.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <map>

namespace offhost::mount::internal {
namespace {

void Put16(std::string* s, size_t at, uint16_t v) {
  (*s)[at] = static_cast<char>(v);
  (*s)[at + 1] = static_cast<char>(v >> 8);
}
void Put32(std::string* s, size_t at, uint32_t v) {
  Put16(s, at, static_cast<uint16_t>(v));
  Put16(s, at + 2, static_cast<uint16_t>(v >> 16));
}

// A node of `size` bytes: header, then the records (each 3 words: a, b, c as the record
// kind lays them out).
std::string Node(size_t size, uint16_t depth, const std::vector<std::array<uint32_t, 3>>& recs) {
  std::string n(size, '\0');
  Put16(&n, 0, 0xF30A);
  Put16(&n, 2, static_cast<uint16_t>(recs.size()));
  Put16(&n, 4, static_cast<uint16_t>((size - 12) / 12));
  Put16(&n, 6, depth);
  for (size_t i = 0; i < recs.size(); ++i) {
    for (size_t w = 0; w < 3; ++w) Put32(&n, 12 + i * 12 + w * 4, recs[i][w]);
  }
  return n;
}
// Leaf record: file block, length (low 16 bits; start hi 0), start block.
std::array<uint32_t, 3> Extent(uint32_t file_block, uint16_t len, uint32_t start) {
  return {file_block, len, start};
}
// Index record: file block, child block (hi 0).
std::array<uint32_t, 3> Index(uint32_t file_block, uint32_t child) {
  return {file_block, child, 0};
}

class Blocks {
 public:
  std::map<uint64_t, std::string> blocks;
  Ext4BlockReader Reader() {
    return [this](uint64_t n, std::span<char> out) -> Status {
      auto it = blocks.find(n);
      if (it == blocks.end()) return Status::IOError("no block " + std::to_string(n));
      std::memcpy(out.data(), it->second.data(), out.size());
      return Status::OK();
    };
  }
};

TEST(Ext4ExtentTreeTest, ReadsATreeWithTwoLeavesInFileOrder) {
  // The shape libtsk 4.12 cannot map: a root with two index entries.
  Blocks b;
  b.blocks[10] = Node(1024, 0, {Extent(0, 4, 100), Extent(8, 2, 200)});
  b.blocks[11] = Node(1024, 0, {Extent(20, 32768 + 3, 300)});  // unwritten
  std::string root = Node(60, 1, {Index(20, 11), Index(0, 10)});
  auto runs = ReadExt4ExtentTree(root, 1024, 1000, b.Reader());
  ASSERT_TRUE(runs.ok()) << runs.status().message();
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].file_block, 0u);
  EXPECT_EQ((*runs)[0].disk_block, 100u);
  EXPECT_EQ((*runs)[0].blocks, 4u);
  EXPECT_EQ((*runs)[1].file_block, 8u);
  EXPECT_EQ((*runs)[2].file_block, 20u);
  EXPECT_EQ((*runs)[2].blocks, 3u);
  EXPECT_TRUE((*runs)[2].unwritten);
}

TEST(Ext4ExtentTreeTest, RefusesLoopsRunsOutsideAndOverlaps) {
  Blocks b;
  b.blocks[10] = Node(1024, 0, {Extent(0, 4, 100)});
  // the same leaf twice: a hostile fan-in
  EXPECT_EQ(ReadExt4ExtentTree(Node(60, 1, {Index(0, 10), Index(4, 10)}), 1024, 1000, b.Reader())
                .status()
                .code(),
            StatusCode::kCorruption);
  // a run past the end of the file system
  EXPECT_FALSE(ReadExt4ExtentTree(Node(60, 0, {Extent(0, 4, 998)}), 1024, 1000, b.Reader()).ok());
  // two runs for the same file blocks
  EXPECT_FALSE(
      ReadExt4ExtentTree(Node(60, 0, {Extent(0, 4, 10), Extent(2, 4, 20)}), 1024, 1000, b.Reader())
          .ok());
  // a child whose depth is not one less
  b.blocks[12] = Node(1024, 1, {});
  EXPECT_FALSE(ReadExt4ExtentTree(Node(60, 1, {Index(0, 12)}), 1024, 1000, b.Reader()).ok());
  std::string bad = Node(60, 0, {});
  bad[0] = 0;
  EXPECT_FALSE(ReadExt4ExtentTree(bad, 1024, 1000, b.Reader()).ok());
}

std::string DirEntry(uint32_t inode, const std::string& name, uint16_t rec_len) {
  std::string e(rec_len, '\0');
  Put32(&e, 0, inode);
  Put16(&e, 4, rec_len);
  e[6] = static_cast<char>(name.size());
  e[7] = 1;
  std::memcpy(e.data() + 8, name.data(), name.size());
  return e;
}

TEST(Ext4DirBlockTest, ListsLiveEntriesAndSkipsUnusedOnes) {
  std::string block =
      DirEntry(2, ".", 12) + DirEntry(0, "gone", 16) + DirEntry(12, "hosts", 1024 - 28);
  std::vector<Ext4DirEntry> out;
  ASSERT_TRUE(ParseExt4DirBlock(block, &out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].inode, 12u);
  EXPECT_EQ(out[1].name, "hosts");
  std::string broken = DirEntry(12, "x", 12) + std::string(1012, '\0');  // rec_len 0 next
  EXPECT_FALSE(ParseExt4DirBlock(broken, &out).ok());
}

TEST(Ext4DirBlockTest, DecodesRecordLengthsOf64KiBBlocks) {
  std::string block(65536, '\0');
  std::string e = DirEntry(12, "only", 16);
  std::memcpy(block.data(), e.data(), e.size());
  Put16(&block, 4, 0);  // 65536, as the kernel stores it
  std::vector<Ext4DirEntry> out;
  ASSERT_TRUE(ParseExt4DirBlock(block, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name, "only");
}

}  // namespace
}  // namespace offhost::mount::internal
