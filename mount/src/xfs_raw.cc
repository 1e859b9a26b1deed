#include "xfs_raw.h"

#include <cstring>

namespace offhost::mount::internal {
namespace {

uint64_t Be(std::span<const char> b, size_t off, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(b[off + i]);
  return v;
}
uint16_t Be16(std::span<const char> b, size_t off) { return static_cast<uint16_t>(Be(b, off, 2)); }
uint32_t Be32(std::span<const char> b, size_t off) { return static_cast<uint32_t>(Be(b, off, 4)); }
uint64_t Be64(std::span<const char> b, size_t off) { return Be(b, off, 8); }

bool PowerOfTwo(uint64_t v) { return v && !(v & (v - 1)); }

constexpr uint64_t kBigtimeFlag = 1u << 3;
constexpr uint64_t kNrext64Flag = 1u << 4;
constexpr int kFormatLocal = 1, kFormatExtents = 2, kFormatBtree = 3;
constexpr int kMaxBtreeDepth = 10;  // XFS's bmbt is at most 9 levels high

int64_t Timestamp(std::span<const char> raw, size_t off, bool bigtime) {
  if (bigtime) return static_cast<int64_t>(Be64(raw, off) / 1000000000ull) - 2147483648ll;
  return static_cast<int32_t>(Be32(raw, off));
}

XfsExtent DecodeRecord(std::span<const char> b, size_t off) {
  uint64_t l0 = Be64(b, off), l1 = Be64(b, off + 8);
  XfsExtent e;
  e.unwritten = (l0 >> 63) != 0;
  e.file_block = (l0 >> 9) & ((1ull << 54) - 1);
  e.disk_block = ((l0 & 0x1ff) << 43) | (l1 >> 21);
  e.blocks = l1 & ((1ull << 21) - 1);
  return e;
}

}  // namespace

Result<XfsGeometry> ParseXfsSuperblock(std::span<const char> sb) {
  if (sb.size() < 512 || std::memcmp(sb.data(), "XFSB", 4) != 0) {
    return Status::NotFound("no XFS superblock");
  }
  XfsGeometry g;
  g.block_size = Be32(sb, 4);
  g.data_blocks = Be64(sb, 8);
  g.ag_blocks = Be32(sb, 84);
  g.ag_count = Be32(sb, 88);
  g.v5 = (Be16(sb, 100) & 0xf) == 5;
  g.inode_size = Be16(sb, 104);
  uint16_t inopblock = Be16(sb, 106);
  g.inop_blog = static_cast<uint8_t>(sb[123]);
  g.ag_blk_log = static_cast<uint8_t>(sb[124]);
  if (!PowerOfTwo(g.block_size) || g.block_size < 512 || g.block_size > 65536 ||
      !PowerOfTwo(g.inode_size) || g.inode_size < 256 || g.inode_size > g.block_size ||
      inopblock != g.block_size / g.inode_size || (1u << g.inop_blog) != inopblock ||
      g.ag_blocks == 0 || g.ag_count == 0 || g.ag_blk_log > 31 ||
      (1ull << g.ag_blk_log) < g.ag_blocks) {
    return Status::Corruption("XFS superblock has an impossible geometry (block size " +
                              std::to_string(g.block_size) + ", inode size " +
                              std::to_string(g.inode_size) + ", " + std::to_string(g.ag_count) +
                              " allocation groups of " + std::to_string(g.ag_blocks) + " blocks)");
  }
  return g;
}

Result<XfsInode> ParseXfsInode(const XfsGeometry& geo, std::span<const char> raw) {
  if (raw.size() < geo.inode_size || raw.size() < 176 || std::memcmp(raw.data(), "IN", 2) != 0) {
    return Status::Corruption("inode has no 'IN' magic");
  }
  XfsInode ino;
  ino.mode = Be16(raw, 2);
  ino.version = static_cast<uint8_t>(raw[4]);
  ino.format = static_cast<uint8_t>(raw[5]);
  ino.uid = Be32(raw, 8);
  ino.gid = Be32(raw, 12);
  ino.links = ino.version >= 2 ? Be32(raw, 16) : Be16(raw, 6);
  uint64_t flags2 = ino.version >= 3 ? Be64(raw, 120) : 0;
  bool bigtime = flags2 & kBigtimeFlag;
  ino.atime = Timestamp(raw, 32, bigtime);
  ino.mtime = Timestamp(raw, 40, bigtime);
  ino.ctime = Timestamp(raw, 48, bigtime);
  ino.size = Be64(raw, 56);
  ino.nextents = (flags2 & kNrext64Flag) ? Be64(raw, 24) : Be32(raw, 76);
  ino.realtime = Be16(raw, 90) & 0x1;
  size_t core = ino.version >= 3 ? 176 : 100;
  uint8_t forkoff = static_cast<uint8_t>(raw[82]);
  size_t fork_size = forkoff ? size_t{forkoff} * 8 : geo.inode_size - core;
  if (core + fork_size > geo.inode_size) {
    return Status::Corruption("inode's attribute fork offset " + std::to_string(forkoff) +
                              " is past the inode's end");
  }
  ino.data_fork.assign(raw.data() + core, fork_size);
  return ino;
}

Result<uint64_t> XfsRaw::BlockOffset(uint64_t fs_block) const {
  uint64_t agno = fs_block >> geo_.ag_blk_log;
  uint64_t agbno = fs_block & ((1ull << geo_.ag_blk_log) - 1);
  uint64_t byte = (agno * geo_.ag_blocks + agbno) * geo_.block_size;
  if (agno >= geo_.ag_count || agbno >= geo_.ag_blocks || byte >= volume_.size()) {
    return Status::Corruption("XFS block " + std::to_string(fs_block) +
                              " lies outside the file system");
  }
  return byte;
}

Result<XfsInode> XfsRaw::ReadInode(uint64_t inode_number) {
  uint64_t index = inode_number & ((1ull << geo_.inop_blog) - 1);
  OFFHOST_ASSIGN_OR_RETURN(uint64_t block, BlockOffset(inode_number >> geo_.inop_blog));
  std::string raw(geo_.inode_size, '\0');
  ReadRequest req{block + index * geo_.inode_size, {raw.data(), raw.size()}};
  OFFHOST_RETURN_IF_ERROR(volume_.Read({&req, 1}));
  auto ino = ParseXfsInode(geo_, raw);
  if (!ino.ok()) return ino.status().WithContext("XFS inode " + std::to_string(inode_number));
  return ino;
}

Result<std::vector<XfsExtent>> XfsRaw::DataExtents(const XfsInode& inode) {
  std::vector<XfsExtent> out;
  std::span<const char> fork(inode.data_fork);
  if (inode.format == kFormatLocal) return out;  // data lives in the inode
  if (inode.format == kFormatExtents) {
    if (inode.nextents > fork.size() / 16) {
      return Status::Corruption("inode lists " + std::to_string(inode.nextents) +
                                " extents, more than its data fork holds");
    }
    for (uint64_t i = 0; i < inode.nextents; ++i) out.push_back(DecodeRecord(fork, i * 16));
    return out;
  }
  if (inode.format != kFormatBtree) {
    return Status::NotSupported("data fork format " + std::to_string(inode.format));
  }
  if (fork.size() < 4) return Status::Corruption("btree root does not fit in the inode");
  int level = Be16(fork, 0);
  uint16_t numrecs = Be16(fork, 2);
  size_t maxrecs = (fork.size() - 4) / 16;
  if (level < 1 || level > kMaxBtreeDepth || numrecs == 0 || numrecs > maxrecs) {
    return Status::Corruption("btree root in the inode: level " + std::to_string(level) + ", " +
                              std::to_string(numrecs) + " records");
  }
  // Every block of the map is read once; a loop in a damaged btree must not run forever.
  uint64_t budget = inode.nextents + 1024;
  for (uint16_t i = 0; i < numrecs; ++i) {
    uint64_t ptr = Be64(fork, 4 + maxrecs * 8 + i * 8);
    OFFHOST_RETURN_IF_ERROR(ReadBtreeBlock(ptr, level - 1, 1, &out, &budget));
  }
  return out;
}

Status XfsRaw::ReadBtreeBlock(uint64_t fs_block, int expect_level, int depth,
                              std::vector<XfsExtent>* out, uint64_t* budget) {
  if (depth > kMaxBtreeDepth || (*budget)-- == 0) {
    return Status::Corruption("extent btree is deeper or larger than its inode says");
  }
  OFFHOST_ASSIGN_OR_RETURN(uint64_t offset, BlockOffset(fs_block));
  std::string block(geo_.block_size, '\0');
  ReadRequest req{offset, {block.data(), block.size()}};
  OFFHOST_RETURN_IF_ERROR(volume_.Read({&req, 1}));
  std::span<const char> b(block);
  size_t header = geo_.v5 ? 72 : 24;
  if (std::memcmp(b.data(), geo_.v5 ? "BMA3" : "BMAP", 4) != 0) {
    return Status::Corruption("extent btree block " + std::to_string(fs_block) + " has no magic");
  }
  int level = Be16(b, 4);
  uint16_t numrecs = Be16(b, 6);
  size_t maxrecs = (b.size() - header) / 16;
  if (level != expect_level || numrecs > maxrecs) {
    return Status::Corruption("extent btree block " + std::to_string(fs_block) + ": level " +
                              std::to_string(level) + " (expected " +
                              std::to_string(expect_level) + "), " + std::to_string(numrecs) +
                              " records");
  }
  if (level == 0) {
    for (uint16_t i = 0; i < numrecs; ++i) out->push_back(DecodeRecord(b, header + i * 16));
    return Status::OK();
  }
  for (uint16_t i = 0; i < numrecs; ++i) {
    uint64_t ptr = Be64(b, header + maxrecs * 8 + i * 8);
    OFFHOST_RETURN_IF_ERROR(ReadBtreeBlock(ptr, level - 1, depth + 1, out, budget));
  }
  return Status::OK();
}

}  // namespace offhost::mount::internal
