// The few XFS on-disk structures offhost reads itself, beside libfsxfs: the superblock's
// geometry, an inode's core (times: libfsxfs 20201117 misreads "bigtime" timestamps, the
// default since xfsprogs 5.15) and its data fork's extent map (libfsxfs has no extent API).
// All fields are big-endian. Offsets below are from the Linux kernel's xfs_format.h.
//
// Superblock (sector 0 of the file system), fields used:
//   0 magic "XFSB" | 4 blocksize u32 | 8 dblocks u64 | 84 agblocks u32 | 88 agcount u32
//   100 versionnum u16 (low nibble 5 = v5, CRC) | 104 inodesize u16 | 106 inopblock u16
//   120 blocklog u8 | 122 inodelog u8 | 123 inopblog u8 | 124 agblklog u8
// Inode number: agno << (agblklog + inopblog) | agbno << inopblog | index in block.
// File-system block number: agno << agblklog | agbno; byte = (agno * agblocks + agbno) * blocksize.
//
// Inode core (dinode):
//   0 magic "IN" | 2 mode u16 | 4 version u8 (3 = v5) | 5 format u8 (data fork: 1 local,
//   2 extents, 3 btree) | 6 onlink u16 (v1) | 8 uid u32 | 12 gid u32 | 16 nlink u32 (v2+)
//   24 big_nextents u64 (NREXT64 only)
//   32 atime | 40 mtime | 48 ctime (8 bytes each: legacy = s32 seconds + u32 nanoseconds;
//   BIGTIME = u64 nanoseconds since 1901-12-13T20:45:52Z) | 56 size u64 | 76 nextents u32
//   82 forkoff u8 (attribute fork offset / 8; 0 = none) | 90 flags u16 (0x1 realtime)
//   v3 only: 120 flags2 u64 (bit 3 BIGTIME, bit 4 NREXT64) | 144 crtime
//   The data fork follows the core: at 100 (v1/v2) or 176 (v3).
// Extent record (bmbt_rec, 16 bytes, two u64 l0 l1):
//   unwritten = l0 >> 63; file block = (l0 >> 9) & (2^54-1);
//   disk fs block = (l0 & 0x1ff) << 43 | l1 >> 21; block count = l1 & (2^21-1).
// Btree format: the fork holds a bmdr root: level u16, numrecs u16, then maxrecs keys (u64)
// and maxrecs pointers (u64 fs block), maxrecs = (fork size - 4) / 16. Other levels are
// blocks with a header (v5 "BMA3" 72 bytes, v4 "BMAP" 24 bytes: magic u32, level u16,
// numrecs u16, ...): leaves hold records, nodes keys and pointers like the root with
// maxrecs = (blocksize - header) / 16.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "offhost/common/block_device.h"

namespace offhost::mount::internal {

struct XfsGeometry {
  uint32_t block_size = 0;
  uint64_t data_blocks = 0;
  uint32_t ag_blocks = 0, ag_count = 0;
  uint16_t inode_size = 0;
  uint8_t ag_blk_log = 0, inop_blog = 0;
  bool v5 = false;
};

struct XfsInode {
  uint16_t mode = 0;
  uint8_t version = 0, format = 0;
  uint32_t uid = 0, gid = 0;
  uint32_t links = 0;
  int64_t atime = 0, mtime = 0, ctime = 0;  // seconds since 1970
  uint64_t size = 0;
  uint64_t nextents = 0;
  bool realtime = false;
  std::string data_fork;  // the fork's bytes as stored in the inode
};

struct XfsExtent {
  uint64_t file_block = 0;
  uint64_t disk_block = 0;  // file-system block number (agno << agblklog | agbno)
  uint64_t blocks = 0;
  bool unwritten = false;
};

// `sb` holds at least the first 512 bytes of the file system. NotFound without the magic;
// Corruption when the geometry is impossible.
Result<XfsGeometry> ParseXfsSuperblock(std::span<const char> sb);
// `raw` is one inode (geometry.inode_size bytes).
Result<XfsInode> ParseXfsInode(const XfsGeometry& geo, std::span<const char> raw);

class XfsRaw {
 public:
  XfsRaw(BlockDevice& volume, const XfsGeometry& geo) : volume_(volume), geo_(geo) {}
  const XfsGeometry& geometry() const { return geo_; }
  Result<XfsInode> ReadInode(uint64_t inode_number);
  // Volume byte offset of a file-system block; Corruption when it lies outside the volume.
  Result<uint64_t> BlockOffset(uint64_t fs_block) const;
  // The data fork's extents in file order (extents or btree format; empty when local).
  Result<std::vector<XfsExtent>> DataExtents(const XfsInode& inode);

 private:
  Status ReadBtreeBlock(uint64_t fs_block, int expect_level, int depth,
                        std::vector<XfsExtent>* out, uint64_t* budget);
  BlockDevice& volume_;
  XfsGeometry geo_;
};

}  // namespace offhost::mount::internal
