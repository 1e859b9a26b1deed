#include "ext4_raw.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

namespace offhost::mount::internal {
namespace {

constexpr uint16_t kExtentMagic = 0xF30A;
constexpr size_t kHeader = 12, kRecord = 12;
constexpr uint16_t kMaxDepth = 5;  // EXT4_MAX_EXTENT_DEPTH
// A bound on what a hostile tree can make us hold (32 bytes a run); a real file in this many
// pieces is 64 GiB in single 4 KiB blocks.
constexpr size_t kMaxRuns = size_t{1} << 24;

uint16_t U16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | static_cast<uint8_t>(p[1]) << 8);
}
uint32_t U32(const char* p) { return U16(p) | static_cast<uint32_t>(U16(p + 2)) << 16; }

Status Damaged(const std::string& what) { return Status::Corruption("ext4 extent tree: " + what); }

class TreeWalk {
 public:
  TreeWalk(uint32_t block_size, uint64_t fs_blocks, const Ext4BlockReader& read)
      : block_size_(block_size), fs_blocks_(fs_blocks), read_(read) {}

  Status Node(std::span<const char> node, int expected_depth) {
    if (node.size() < kHeader || U16(node.data()) != kExtentMagic) return Damaged("bad magic");
    const uint16_t entries = U16(node.data() + 2), max = U16(node.data() + 4),
                   depth = U16(node.data() + 6);
    if (depth > kMaxDepth || (expected_depth >= 0 && depth != expected_depth))
      return Damaged("bad depth " + std::to_string(depth));
    if (entries > max || kHeader + size_t{max} * kRecord > node.size())
      return Damaged("more entries than fit");
    for (uint16_t i = 0; i < entries; ++i) {
      const char* r = node.data() + kHeader + size_t{i} * kRecord;
      if (depth == 0) {
        OFFHOST_RETURN_IF_ERROR(Leaf(r));
      } else {
        uint64_t child = uint64_t{U32(r + 4)} | uint64_t{U16(r + 8)} << 32;
        OFFHOST_RETURN_IF_ERROR(Child(child, depth - 1));
      }
    }
    return Status::OK();
  }

  std::vector<Ext4Run> Take() { return std::move(runs_); }

 private:
  Status Leaf(const char* r) {
    Ext4Run run;
    run.file_block = U32(r);
    uint16_t len = U16(r + 4);
    run.unwritten = len > 32768;
    run.blocks = run.unwritten ? len - 32768u : len;
    run.disk_block = uint64_t{U32(r + 8)} | uint64_t{U16(r + 6)} << 32;
    if (run.blocks == 0) return Status::OK();
    if (run.disk_block >= fs_blocks_ || run.blocks > fs_blocks_ - run.disk_block)
      return Damaged("a run beyond the end of the file system");
    if (runs_.size() >= kMaxRuns) return Damaged("more than 16 million pieces");
    runs_.push_back(run);
    return Status::OK();
  }

  Status Child(uint64_t block, int depth) {
    if (block >= fs_blocks_) return Damaged("a node beyond the end of the file system");
    // A node reached twice (a loop, or a hostile fan-in) would be read again and again.
    if (!visited_.insert(block).second) return Damaged("a node reached twice");
    std::vector<char> buf(block_size_);
    OFFHOST_RETURN_IF_ERROR(read_(block, buf));
    return Node(buf, depth);
  }

  uint32_t block_size_;
  uint64_t fs_blocks_;
  const Ext4BlockReader& read_;
  std::unordered_set<uint64_t> visited_;
  std::vector<Ext4Run> runs_;
};

}  // namespace

Result<std::vector<Ext4Run>> ReadExt4ExtentTree(std::span<const char> root, uint32_t block_size,
                                                uint64_t fs_blocks, const Ext4BlockReader& read) {
  if (block_size < 1024 || block_size > 65536) return Damaged("bad block size");
  TreeWalk walk(block_size, fs_blocks, read);
  OFFHOST_RETURN_IF_ERROR(walk.Node(root, -1));
  std::vector<Ext4Run> runs = walk.Take();
  std::sort(runs.begin(), runs.end(),
            [](const Ext4Run& a, const Ext4Run& b) { return a.file_block < b.file_block; });
  for (size_t i = 1; i < runs.size(); ++i) {
    if (runs[i - 1].file_block + runs[i - 1].blocks > runs[i].file_block)
      return Damaged("overlapping runs");
  }
  return runs;
}

Status ParseExt4DirBlock(std::span<const char> block, std::vector<Ext4DirEntry>* out) {
  size_t at = 0;
  while (at + 8 <= block.size()) {
    const char* e = block.data() + at;
    uint32_t inode = U32(e);
    // As the kernel's ext4_rec_len_from_disk: 64 KiB blocks keep bits 16-17 in bits 0-1.
    size_t rec_len = U16(e + 4);
    if (block.size() >= 65536) {
      rec_len =
          (rec_len == 65535 || rec_len == 0) ? 65536 : (rec_len & 65532) | (rec_len & 3) << 16;
    }
    uint8_t name_len = static_cast<uint8_t>(e[6]);
    if (rec_len < 8 || rec_len % 4 != 0 || rec_len > block.size() - at || 8u + name_len > rec_len)
      return Status::Corruption("ext4 directory block: bad entry at byte " + std::to_string(at));
    if (inode != 0 && name_len > 0) out->push_back({inode, std::string(e + 8, name_len)});
    at += rec_len;
  }
  return Status::OK();
}

}  // namespace offhost::mount::internal
