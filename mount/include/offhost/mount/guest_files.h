// The files inside a VM's disks, read in user space and read-only over any BlockDevice (a live
// export or a stored backup): partition tables (MBR, GPT) or a whole-disk file system, LVM2
// logical volumes (linear, on partitions or whole disks, in any number of segments), and the
// file systems The Sleuth Kit reads (ext2/3/4, NTFS, FAT12/16/32, exFAT, ...) plus XFS.
//
// Paths: "/" lists the volumes, named like Linux names them: partitions "vda1", "vda2" by
// their GPT entry or MBR slot, MBR logical partitions "vda5", "vda6"... ("vda" for a file
// system on the whole disk) and logical volumes like device-mapper "VG-LV"
// ("rhel-root"; a '-' inside a VG or LV name is doubled). "/vda1/etc/fstab" is a file in the
// first partition, "/rhel-root/etc/fstab" one in the logical volume root of VG rhel.
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
  // The file's inode in its volume and its hard-link count, where the file system has them
  // (0: not known). Two entries with one inode are one file under two names.
  uint64_t inode = 0;
  uint32_t links = 0;
};

struct VolumeInfo {
  std::string name;  // "vda1", "rhel-root"
  // Bytes on the disk (a logical volume: where its first segment starts; its length is the
  // LV's size, whatever its segments).
  uint64_t offset = 0, length = 0;
  std::string fs_type;      // "ext4", "ntfs", "fat32", "xfs", ... (empty when not readable)
  std::string not_indexed;  // why the volume's files cannot be read, when they cannot
};

// Where a stretch of a file's data lies on a guest disk.
struct FileExtent {
  uint64_t file_offset = 0;  // byte offset in the file
  uint64_t disk_offset = 0;  // byte offset on the disk, after partition and LV mapping
  uint64_t length = 0;       // bytes
  std::string disk;          // GuestDisk::name of the disk that holds it ("vda")
};

struct GuestDisk {
  std::string name;     // "vda"
  BlockDevice* device;  // must outlive the GuestFiles
};

// Loads the file-system libraries (libtsk) on a thread of its own, for a caller that will read
// file systems soon and waits for something else now. Optional: they load when first used.
void PreloadFileSystemLibraries();

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
  // Where a regular file's data lies on the guest disks, in file order, so it can be read (or
  // catalogued) without the file system. Only data stored plainly in disk blocks is listed:
  // holes, unwritten/preallocated ranges, data inside the inode or MFT record (resident,
  // inline, local) and compressed or encrypted data have no extent and are simply left out;
  // ReadFile() still returns all of it. Extents never reach past the file's size (NTFS: its
  // initialized size). Symlinks and directories are InvalidArgument.
  virtual Result<std::vector<FileExtent>> Extents(const std::string& path) = 0;
};

}  // namespace offhost::mount
