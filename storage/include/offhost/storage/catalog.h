// The file catalog of a snapshot: every file of every indexed guest volume, with its data
// extents on the disk. Stored in the datastore's index as content-addressed directory trees,
// so a directory that did not change between two backups is stored once, however many
// snapshots hold it. Byte layout in docs/catalog-format.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "offhost/common/status.h"
#include "offhost/storage/chunk_id.h"

namespace offhost::storage {

// SHA-256 of a tree's encoding.
using TreeId = ChunkId;

enum class CatalogFileType : uint8_t { kRegular = 0, kDirectory = 1, kSymlink = 2, kOther = 3 };

struct CatalogExtent {
  uint64_t file_offset = 0, disk_offset = 0, length = 0;
  uint32_t disk = 0;  // index into CatalogRecord::disks

  bool operator==(const CatalogExtent&) const = default;
};

struct CatalogEntry {
  std::string name;
  CatalogFileType type = CatalogFileType::kOther;
  uint64_t size = 0;
  uint32_t mode = 0, uid = 0, gid = 0;
  int64_t mtime = 0, atime = 0, ctime = 0;
  std::string link_target;
  std::vector<CatalogExtent> extents;  // regular files: where their data lies on the disks
  std::optional<TreeId> tree;          // directories: their entries (absent if unreadable)

  bool operator==(const CatalogEntry&) const = default;
};

struct CatalogVolume {
  std::string name, fs_type, not_indexed;
  uint64_t offset = 0, length = 0;
  std::optional<TreeId> root;
  uint64_t files = 0, directories = 0, bytes = 0;
  uint64_t unreadable = 0;  // directories whose entries could not be read
};

struct CatalogRecord {
  std::vector<std::string> disks;
  std::vector<CatalogVolume> volumes;
};

// Whether a guest file name can be catalogued: not empty, ".", ".." and without '/' or NUL.
// Indexing skips others (a damaged or hostile file system), so no reader ever meets one.
bool IsCatalogName(const std::string& name);

// A directory's entries, sorted by name (the encoder sorts them).
std::string EncodeTree(std::vector<CatalogEntry> entries);
Result<std::vector<CatalogEntry>> DecodeTree(std::span<const char> bytes);

// Reads catalogs from a datastore's index, keeping it open (and recent trees cached) across
// calls: a search walks many trees.
class CatalogReader {
 public:
  virtual ~CatalogReader() = default;
  // The catalog of a snapshot; empty when it has none (indexing off, or an older backup).
  virtual Result<std::optional<CatalogRecord>> Record(const std::string& vm,
                                                      const std::string& snapshot) = 0;
  virtual Result<std::shared_ptr<const std::vector<CatalogEntry>>> Tree(const TreeId& id) = 0;
};

}  // namespace offhost::storage
