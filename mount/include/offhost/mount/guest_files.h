// The files inside a VM's disks, read in user space and read-only over any BlockDevice (a live
// export or a stored backup): partition tables (MBR, GPT) or a whole-disk file system, and
// the file systems The Sleuth Kit reads (ext2/3/4, NTFS, FAT12/16/32, exFAT, ...).
//
// Paths: "/" lists the volumes, named like Linux partitions ("vda1", "vda2"; "vda" for a file
// system on the whole disk); "/vda1/etc/fstab" is a file in the first partition.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "offhost/common/block_device.h"

namespace offhost::mount {

enum class FileType { kRegular, kDirectory, kSymlink, kOther };

struct FileInfo {
  std::string name;
  FileType type = FileType::kOther;
  uint64_t size = 0;
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 0, atime = 0, ctime = 0;
  std::string link_target;  // symlinks
};

struct VolumeInfo {
  std::string name;  // "vda1"
  uint64_t offset = 0, length = 0;
  std::string fs_type;      // "ext4", "ntfs", "fat32", ... (empty when not readable)
  std::string not_indexed;  // why the volume's files cannot be read, when they cannot
};

struct GuestDisk {
  std::string name;     // "vda"
  BlockDevice* device;  // must outlive the GuestFiles
};

class GuestFiles {
 public:
  static Result<std::unique_ptr<GuestFiles>> Open(const std::vector<GuestDisk>& disks);
  virtual ~GuestFiles() = default;

  virtual const std::vector<VolumeInfo>& volumes() const = 0;
  virtual Result<FileInfo> Stat(const std::string& path) = 0;
  // Entries of a directory, without "." and "..", sorted by name.
  virtual Result<std::vector<FileInfo>> List(const std::string& path) = 0;
  // Streams a regular file's content in order as (file offset, bytes).
  virtual Status ReadFile(const std::string& path,
                          const std::function<Status(uint64_t, std::span<const char>)>& sink) = 0;
};

}  // namespace offhost::mount
