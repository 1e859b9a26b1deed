// The few ext4 on-disk structures offhost reads itself, beside libtsk: an inode's extent tree
// and directory blocks. libtsk 4.12 (Debian 12) cannot map a file whose extent tree has more
// than one index entry ("fs_attr_add_run: ... No filler entry for 0"; fixed upstream in
// sleuthkit pull request 2842, after that release): on a 4 KiB-block file system, any file
// or folder in more than 340 pieces (a database, a log written over months, a folder of
// thousands of files) could then be neither read, listed nor cataloged. TskFsReader falls
// back to these when libtsk fails on such an inode.
//
// All fields are little-endian. From the Linux kernel's fs/ext4/ext4_extents.h and ext4.h:
// Extent tree node: header (12 bytes): magic u16 0xF30A | entries u16 | max u16 | depth u16 |
//   generation u32; then `entries` records of 12 bytes. The root is the inode's i_block (60
//   bytes: 4 records); other nodes are one file-system block each.
// Index record (depth > 0): first file block u32 | child block lo u32 | child block hi u16 | 0.
// Leaf record (depth 0): first file block u32 | length u16 (> 32768: unwritten, length -
//   32768) | start block hi u16 | start block lo u32.
// Directory entry: inode u32 (0: unused) | record length u16 | name length u8 | type u8 |
//   name. A hashed (htree) folder's index blocks look like unused entries spanning the block,
//   and a checksum tail is an unused 12-byte entry, so reading every block in order sees each
//   live entry once.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::mount::internal {

// `blocks` file-system blocks of a file from file block `file_block` on, at `disk_block`.
struct Ext4Run {
  uint64_t file_block = 0;
  uint64_t disk_block = 0;
  uint64_t blocks = 0;
  bool unwritten = false;  // allocated but never written: reads as zeros
};

// Reads one block of the file system: block number, and room for exactly one block.
using Ext4BlockReader = std::function<Status(uint64_t block, std::span<char> out)>;

// The runs of the extent tree whose root is `root` (an inode's 60-byte i_block), sorted by
// file block. Every run lies below `fs_blocks`; a damaged or looping tree, or one in more than
// 2^24 runs, is Corruption.
Result<std::vector<Ext4Run>> ReadExt4ExtentTree(std::span<const char> root, uint32_t block_size,
                                                uint64_t fs_blocks, const Ext4BlockReader& read);

struct Ext4DirEntry {
  uint32_t inode = 0;
  std::string name;
};

// Appends the live entries of one directory block ("." and ".." included) to `out`. Record
// lengths are decoded as the kernel does, 64 KiB blocks included.
Status ParseExt4DirBlock(std::span<const char> block, std::vector<Ext4DirEntry>* out);

}  // namespace offhost::mount::internal
