// FsReader: one volume's file system, read-only, as seen by GuestFiles. A reader knows nothing
// of partitions or LVM: it reads a BlockDevice whose offset 0 is the start of its file system
// (a VolumeDevice), and paths inside it ("/", "/etc/fstab").
//
// Readers register themselves in a table (OFFHOST_REGISTER_FS_READER at the end of their .cc):
// adding a file system is one new file, nothing else changes. OpenFileSystem() tries them in
// `order`: specific readers that recognise their own magic first, catch-all detectors last.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "offhost/common/block_device.h"
#include "offhost/mount/guest_files.h"

namespace offhost::mount::internal {

// A stretch of a file's data in volume bytes (GuestFiles maps it to disk bytes).
struct VolumeExtent {
  uint64_t file_offset = 0;
  uint64_t volume_offset = 0;
  uint64_t length = 0;
};

// The inode numbers of the entries of the folders listed last, so that a file in one of them is
// opened by its inode rather than by a path lookup from the root, which reads every folder on
// the way and scans each for the name: the catalog lists a folder, then asks for each file's
// extents, descending into sub-folders on the way, so with one folder remembered a folder of
// 10,000 files with a sub-folder early in it took quadratic time. The kFolders folders used
// last are kept (enough for the folders open on the way down from the root).
class ListedInodes {
 public:
  void Remember(const std::string& folder, std::unordered_map<std::string, uint64_t> children);
  // The inode of `path` when its folder is remembered and has that entry.
  std::optional<uint64_t> Find(const std::string& path);
  // True when `path`'s folder is remembered and has no such entry: no lookup can find it
  // (a mount is asked for many names that do not exist).
  bool KnownAbsent(const std::string& path);

 private:
  const std::unordered_map<std::string, uint64_t>* FolderOf(const std::string& path,
                                                            std::string* name);
  static constexpr size_t kFolders = 32;
  std::list<std::pair<std::string, std::unordered_map<std::string, uint64_t>>> folders_;
};

class FsReader {
 public:
  virtual ~FsReader() = default;
  // "ext4", "xfs", ... as shown to people.
  virtual std::string fs_type() const = 0;
  // `path` starts with '/'; "/" is the root directory. FileInfo::name of "/" is left empty.
  virtual Result<FileInfo> Stat(const std::string& path) = 0;
  // Entries without "." and "..", in any order (GuestFiles sorts).
  virtual Result<std::vector<FileInfo>> List(const std::string& path) = 0;
  virtual Status ReadFile(const std::string& path,
                          const std::function<Status(uint64_t, std::span<const char>)>& sink) = 0;
  // See GuestFiles::Extents: what is not plainly in volume blocks is left out.
  virtual Result<std::vector<VolumeExtent>> Extents(const std::string& path) = 0;
};

// Opens the file system on `volume` (which outlives the reader). NotFound means "not mine"
// (the next reader is tried); any other error means "mine, but unreadable" and is final.
using FsOpenFn = Result<std::unique_ptr<FsReader>> (*)(BlockDevice& volume);

struct FsReaderEntry {
  const char* name;
  int order;  // lower is tried first
  FsOpenFn open;
};

bool RegisterFsReader(const char* name, int order, FsOpenFn open);
// Registered readers, sorted by order.
std::vector<FsReaderEntry> FsReaders();

// The first reader that claims `volume`; when none does, NotFound whose message says what
// each reader saw.
Result<std::unique_ptr<FsReader>> OpenFileSystem(BlockDevice& volume);

}  // namespace offhost::mount::internal

#define OFFHOST_REGISTER_FS_READER(name, order, open_fn)             \
  static const bool offhost_fs_reader_registered_##open_fn [[maybe_unused]] = \
      ::offhost::mount::internal::RegisterFsReader(name, order, open_fn)
