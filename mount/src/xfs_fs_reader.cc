// FsReader for XFS (RHEL/CentOS/Rocky's default), which libtsk 4.11 lacks: libyal's libfsxfs
// walks paths and directories and reads file data through a libbfio handle over the volume;
// times and extent maps come from xfs_raw.h (libfsxfs 20201117 misreads bigtime timestamps and
// has no extent API).
#include <libfsxfs.h>
#include <sys/stat.h>

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "bfio_device.h"  // first: libfsxfs.h declares its libbfio entry points after it
#include "fs_reader.h"
#include "xfs_raw.h"

namespace offhost::mount::internal {
namespace {

std::string FsxfsError(libfsxfs_error_t* error) {
  char buf[512] = {};
  if (error) libfsxfs_error_sprint(error, buf, sizeof buf);
  libfsxfs_error_free(&error);
  std::string s = buf[0] ? buf : "unknown error";
  while (!s.empty() && (s.back() == '\n' || s.back() == '.')) s.pop_back();
  return s;
}

struct VolumeCloser {
  void operator()(libfsxfs_volume_t* v) const {
    libfsxfs_volume_close(v, nullptr);
    libfsxfs_volume_free(&v, nullptr);
  }
};
struct EntryCloser {
  void operator()(libfsxfs_file_entry_t* e) const { libfsxfs_file_entry_free(&e, nullptr); }
};
using Volume = std::unique_ptr<libfsxfs_volume_t, VolumeCloser>;
using Entry = std::unique_ptr<libfsxfs_file_entry_t, EntryCloser>;

class XfsFsReader final : public FsReader {
 public:
  XfsFsReader(BlockDevice& volume, const XfsGeometry& geo, std::unique_ptr<BfioHandle> io,
              Volume fs)
      : raw_(volume, geo), io_(std::move(io)), fs_(std::move(fs)) {}

  std::string fs_type() const override { return "xfs"; }

  Result<FileInfo> Stat(const std::string& path) override {
    OFFHOST_ASSIGN_OR_RETURN(Entry e, Lookup(path));
    return InfoOf(e.get(), path == "/" ? "" : path.substr(path.rfind('/') + 1));
  }

  Result<std::vector<FileInfo>> List(const std::string& path) override {
    OFFHOST_ASSIGN_OR_RETURN(Entry dir, Lookup(path));
    OFFHOST_ASSIGN_OR_RETURN(FileInfo self, InfoOf(dir.get(), ""));
    if (self.type != FileType::kDirectory) return Status::NotFound("not a directory");
    int n = 0;
    libfsxfs_error_t* error = nullptr;
    if (libfsxfs_file_entry_get_number_of_sub_file_entries(dir.get(), &n, &error) != 1) {
      return Failed("list", error);
    }
    std::vector<FileInfo> out;
    std::unordered_map<std::string, uint64_t> inodes;
    for (int i = 0; i < n; ++i) {
      libfsxfs_file_entry_t* raw = nullptr;
      if (libfsxfs_file_entry_get_sub_file_entry_by_index(dir.get(), i, &raw, &error) != 1) {
        return Failed("list entry " + std::to_string(i) + " of", error);
      }
      Entry child(raw);
      auto name = Name(child.get());
      if (!name.ok()) return name.status();
      if (*name == "." || *name == "..") continue;
      OFFHOST_ASSIGN_OR_RETURN(FileInfo info, InfoOf(child.get(), *name));
      inodes[*name] = info.inode;
      out.push_back(std::move(info));
    }
    listed_.Remember(path, std::move(inodes));
    return out;
  }

  Status ReadFile(const std::string& path,
                  const std::function<Status(uint64_t, std::span<const char>)>& sink) override {
    OFFHOST_ASSIGN_OR_RETURN(Entry e, Lookup(path));
    OFFHOST_ASSIGN_OR_RETURN(FileInfo info, InfoOf(e.get(), ""));
    if (info.type != FileType::kRegular) return Status::InvalidArgument("not a regular file");
    std::vector<char> buf(1 << 20);
    for (uint64_t off = 0; off < info.size;) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), info.size - off));
      libfsxfs_error_t* error = nullptr;
      ssize_t n = libfsxfs_file_entry_read_buffer_at_offset(e.get(), buf.data(), want,
                                                            static_cast<off64_t>(off), &error);
      if (n <= 0) {
        if (n == 0 && !error) {
          return Status::Corruption("read at offset " + std::to_string(off) +
                                    ": the file ends before its size (" +
                                    std::to_string(info.size) + " bytes)");
        }
        return Failed("read at offset " + std::to_string(off) + " of", error);
      }
      OFFHOST_RETURN_IF_ERROR(sink(off, {buf.data(), static_cast<size_t>(n)}));
      off += static_cast<uint64_t>(n);
    }
    return Status::OK();
  }

  Result<std::vector<VolumeExtent>> Extents(const std::string& path) override {
    OFFHOST_ASSIGN_OR_RETURN(Entry e, Lookup(path));
    OFFHOST_ASSIGN_OR_RETURN(XfsInode ino, RawInode(e.get()));
    if ((ino.mode & S_IFMT) != S_IFREG) return Status::InvalidArgument("not a regular file");
    std::vector<VolumeExtent> out;
    if (ino.realtime) return out;  // data on a realtime device, which a VM disk never has
    OFFHOST_ASSIGN_OR_RETURN(auto extents, raw_.DataExtents(ino));
    uint64_t bs = raw_.geometry().block_size;
    for (const auto& x : extents) {
      if (x.unwritten) continue;  // preallocated: reads as zeros
      uint64_t file_off = x.file_block * bs;
      if (file_off >= ino.size) continue;
      uint64_t len = std::min(x.blocks * bs, ino.size - file_off);
      // An extent may cross an allocation-group boundary only in block numbers, never on
      // disk, so it is one stretch of the volume.
      OFFHOST_ASSIGN_OR_RETURN(uint64_t vol_off, raw_.BlockOffset(x.disk_block));
      out.push_back({file_off, vol_off, len});
    }
    return out;
  }

 private:
  Status Failed(const std::string& what, libfsxfs_error_t* error) {
    std::string cause = FsxfsError(error);
    std::string io = io_->last_error();
    return Status::IOError(what + " XFS: " + cause + (io.empty() ? "" : " (" + io + ")"));
  }

  // libfsxfs 20201117 leaks an inode (624 bytes) each time a path lookup misses a name
  // (tests/sanitizer/lsan.supp); its one-name lookup, which would let us walk the path
  // ourselves, fails on names that exist, so the path lookup stays.
  Result<Entry> Lookup(const std::string& path) {
    libfsxfs_file_entry_t* raw = nullptr;
    libfsxfs_error_t* error = nullptr;
    if (listed_.KnownAbsent(path)) return Status::NotFound("no such file or directory");
    if (auto inode = listed_.Find(path)) {
      if (libfsxfs_volume_get_file_entry_by_inode(fs_.get(), *inode, &raw, &error) == 1 && raw)
        return Entry(raw);
      libfsxfs_error_free(&error);  // then by path, which says what is wrong
    }
    int r = path == "/" ? libfsxfs_volume_get_root_directory(fs_.get(), &raw, &error)
                        : libfsxfs_volume_get_file_entry_by_utf8_path(
                              fs_.get(), reinterpret_cast<const uint8_t*>(path.data()),
                              path.size(), &raw, &error);
    if (r == 1 && raw) return Entry(raw);
    if (r == 0) return Status::NotFound("no such file or directory");
    return Failed("look up " + path + " in", error);
  }

  Result<std::string> Name(libfsxfs_file_entry_t* e) {
    size_t size = 0;
    libfsxfs_error_t* error = nullptr;
    if (libfsxfs_file_entry_get_utf8_name_size(e, &size, &error) != 1) return Failed("name in", error);
    std::string name(size, '\0');
    if (size && libfsxfs_file_entry_get_utf8_name(e, reinterpret_cast<uint8_t*>(name.data()),
                                                  size, &error) != 1) {
      return Failed("name in", error);
    }
    while (!name.empty() && name.back() == '\0') name.pop_back();
    return name;
  }

  Result<XfsInode> RawInode(libfsxfs_file_entry_t* e) {
    uint64_t number = 0;
    libfsxfs_error_t* error = nullptr;
    if (libfsxfs_file_entry_get_inode_number(e, &number, &error) != 1) {
      return Failed("inode number in", error);
    }
    return raw_.ReadInode(number);
  }

  Result<FileInfo> InfoOf(libfsxfs_file_entry_t* e, const std::string& name) {
    uint64_t number = 0;
    libfsxfs_error_t* number_error = nullptr;
    if (libfsxfs_file_entry_get_inode_number(e, &number, &number_error) != 1) {
      return Failed("inode number in", number_error);
    }
    OFFHOST_ASSIGN_OR_RETURN(XfsInode ino, raw_.ReadInode(number));
    FileInfo info;
    info.name = name;
    info.inode = number;
    info.links = ino.links;
    switch (ino.mode & S_IFMT) {
      case S_IFREG: info.type = FileType::kRegular; break;
      case S_IFDIR: info.type = FileType::kDirectory; break;
      case S_IFLNK: info.type = FileType::kSymlink; break;
      default: info.type = FileType::kOther;
    }
    info.size = ino.size;
    info.mode = ino.mode & 07777;
    info.uid = ino.uid;
    info.gid = ino.gid;
    info.mtime = ino.mtime;
    info.atime = ino.atime;
    info.ctime = ino.ctime;
    if (info.type == FileType::kSymlink) {
      size_t size = 0;
      libfsxfs_error_t* error = nullptr;
      if (libfsxfs_file_entry_get_utf8_symbolic_link_target_size(e, &size, &error) != 1) {
        return Failed("symlink target in", error);
      }
      std::string target(size, '\0');
      if (size && libfsxfs_file_entry_get_utf8_symbolic_link_target(
                      e, reinterpret_cast<uint8_t*>(target.data()), size, &error) != 1) {
        return Failed("symlink target in", error);
      }
      while (!target.empty() && target.back() == '\0') target.pop_back();
      info.link_target = std::move(target);
    }
    return info;
  }

  XfsRaw raw_;
  std::unique_ptr<BfioHandle> io_;  // declared before fs_: destroyed after it
  Volume fs_;
  ListedInodes listed_;
};

Result<std::unique_ptr<FsReader>> OpenXfs(BlockDevice& volume) {
  if (volume.size() < 512) return Status::NotFound("volume too small for XFS");
  std::string sb(512, '\0');
  ReadRequest req{0, {sb.data(), sb.size()}};
  OFFHOST_RETURN_IF_ERROR(volume.Read({&req, 1}));
  OFFHOST_ASSIGN_OR_RETURN(XfsGeometry geo, ParseXfsSuperblock(sb));
  OFFHOST_ASSIGN_OR_RETURN(auto io, BfioHandle::Open(volume));
  libfsxfs_volume_t* raw = nullptr;
  libfsxfs_error_t* error = nullptr;
  if (libfsxfs_volume_initialize(&raw, &error) != 1) {
    return Status::IOError("libfsxfs: " + FsxfsError(error));
  }
  if (libfsxfs_volume_open_file_io_handle(raw, io->get(), LIBFSXFS_OPEN_READ, &error) != 1) {
    libfsxfs_volume_free(&raw, nullptr);
    std::string why = FsxfsError(error);
    std::string cause = io->last_error();
    return Status::Corruption("XFS superblock found but the file system cannot be opened: " +
                              why + (cause.empty() ? "" : " (" + cause + ")"));
  }
  return std::unique_ptr<FsReader>(new XfsFsReader(volume, geo, std::move(io), Volume(raw)));
}

}  // namespace

OFFHOST_REGISTER_FS_READER("xfs", 10, OpenXfs);

}  // namespace offhost::mount::internal
