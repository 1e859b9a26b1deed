// libFuzzer target: ext4 extent trees and directory blocks come from guest disks
// (mount/src/ext4_raw.h). Input: a 60-byte tree root, then 1 KiB file-system blocks the tree
// may point at, the first of which is also parsed as a directory block. Parsing never crashes
// or reads outside what it is given; the runs it accepts lie inside the file system, sorted
// and without overlap.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ext4_raw.h"

using namespace offhost;
using namespace offhost::mount::internal;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kRoot = 60, kBlock = 1024;
  if (size < kRoot) return 0;
  const std::string input(reinterpret_cast<const char*>(data), size);
  const uint64_t blocks = (size - kRoot) / kBlock;
  auto read = [&](uint64_t n, std::span<char> out) -> Status {
    if (out.size() != kBlock) std::abort();
    if (n >= blocks) return Status::IOError("beyond the input");
    std::memcpy(out.data(), input.data() + kRoot + n * kBlock, kBlock);
    return Status::OK();
  };
  auto runs = ReadExt4ExtentTree({input.data(), kRoot}, kBlock, blocks + 1, read);
  if (runs.ok()) {
    for (size_t i = 0; i < runs->size(); ++i) {
      const Ext4Run& r = (*runs)[i];
      if (r.blocks == 0 || r.disk_block + r.blocks > blocks + 1) std::abort();
      if (i > 0 && (*runs)[i - 1].file_block + (*runs)[i - 1].blocks > r.file_block) std::abort();
    }
  }
  if (blocks > 0) {
    std::vector<Ext4DirEntry> entries;
    if (ParseExt4DirBlock({input.data() + kRoot, kBlock}, &entries).ok()) {
      for (const auto& e : entries) {
        if (e.inode == 0 || e.name.empty() || e.name.size() > 255) std::abort();
      }
    }
  }
  return 0;
}
