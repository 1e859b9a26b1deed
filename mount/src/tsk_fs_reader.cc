// FsReader over The Sleuth Kit: ext2/3/4, NTFS, FAT12/16/32, exFAT, HFS+, ISO 9660, UFS...
// (libtsk 4.11 has no XFS: xfs_fs_reader.cc). Tried last: TSK detects by probing every file
// system it knows, so readers that recognise one magic go first.
#include <algorithm>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ext4_raw.h"
#include "fs_reader.h"
#include "tsk_image.h"

namespace offhost::mount::internal {
namespace {

FileInfo InfoOf(const TSK_FS_FILE* f, const std::string& name) {
  bool ntfs = TSK_FS_TYPE_ISNTFS(f->fs_info->ftype);
  FileInfo info;
  info.name = name;
  const TSK_FS_META* m = f->meta;
  if (!m) return info;
  switch (m->type) {
    case TSK_FS_META_TYPE_REG:
      info.type = FileType::kRegular;
      break;
    case TSK_FS_META_TYPE_DIR:
      info.type = FileType::kDirectory;
      break;
    case TSK_FS_META_TYPE_LNK:
      info.type = FileType::kSymlink;
      break;
    default:
      info.type = FileType::kOther;
  }
  info.size = static_cast<uint64_t>(m->size);
  info.mode = static_cast<uint32_t>(m->mode) & 07777;
  // NTFS has no Unix owner (files belong to SIDs); what TSK puts in uid is not one, and a
  // restore must not hand a Windows file to whichever host account has that number.
  info.uid = ntfs ? 0 : static_cast<uint32_t>(m->uid);
  info.gid = ntfs ? 0 : static_cast<uint32_t>(m->gid);
  info.mtime = m->mtime;
  info.atime = m->atime;
  info.ctime = m->ctime;
  if (m->link) info.link_target = m->link;
  info.inode = m->addr;
  info.links = static_cast<uint32_t>(m->nlink);
  return info;
}

// Entries TSK lists that are not guest files: its virtual ones ($MBR, $FAT1, $FAT2,
// $OrphanFiles), NTFS's metadata files (MFT records 0-23: $MFT ... $Extend), exFAT's
// directory records it names "$ALLOC_BITMAP", "$UPCASE_TABLE"..., and the FAT volume label
// it shows as a file "LABEL (Volume Label Entry)". Anything else is the guest's, '$' or not
// ($Recycle.Bin on NTFS, a "$HOME" folder on ext4).
bool IsFsInternal(const TSK_FS_FILE* f, const std::string& name, const std::string& dir) {
  TSK_FS_TYPE_ENUM type = f->fs_info->ftype;
  if (f->meta->type == TSK_FS_META_TYPE_VIRT || f->meta->type == TSK_FS_META_TYPE_VIRT_DIR)
    return true;
  if (TSK_FS_TYPE_ISNTFS(type)) return f->meta->addr < 24;
  if (TSK_FS_TYPE_ISFAT(type) && name.ends_with(" (Volume Label Entry)")) return true;
  // exFAT's: TSK 4.11 shows these records of the root folder as regular files
  static const std::set<std::string> kExfatRecords = {
      "$ALLOC_BITMAP", "$UPCASE_TABLE", "$VOLUME_GUID", "$VOLUME_LABEL_NONE", "$TEX_FAT", "$ACT"};
  return type == TSK_FS_TYPE_EXFAT && dir == "/" && kExfatRecords.count(name) > 0;
}

class TskFsReader final : public FsReader {
 public:
  TskFsReader(TskImg img, TskFs fs, BlockDevice& volume)
      : img_(std::move(img)), fs_(std::move(fs)), volume_(volume) {}

  std::string fs_type() const override { return tsk_fs_type_toname(fs_->ftype); }

  Result<FileInfo> Stat(const std::string& path) override {
    ForgetReadError();
    TskFile f(OpenByPath(path));
    if (!f || !f->meta) {
      Status failed = Failure(Status::NotFound("no such file or directory"));
      // some file systems (FAT) have no metadata for the root: a plain folder
      if (path == "/" && failed.code() == StatusCode::kNotFound)
        return FileInfo{"", FileType::kDirectory, 0, 0755, 0, 0, 0, 0, 0, ""};
      return failed;
    }
    FileInfo info = InfoOf(f.get(), path == "/" ? "" : path.substr(path.rfind('/') + 1));
    // FAT and exFAT roots have no directory entry: TSK gives them mode 0, which would shut
    // every user but root out of the volume in a mount (--allow-other).
    if (path == "/" && info.mode == 0) info.mode = 0755;
    return info;
  }

  Result<std::vector<FileInfo>> List(const std::string& path) override {
    ForgetReadError();
    // Opened by inode, found as any file is (OpenByPath): libtsk's own path lookup would scan
    // every folder on the way again for each sub-folder listed.
    TSK_INUM_T inode = fs_->root_inum;
    if (path != "/") {
      TskFile f(OpenByPath(path));
      if (!f || !f->meta) return Failure(Status::NotFound("no such directory"));
      inode = f->meta->addr;
    }
    TskDir dir(tsk_fs_dir_open_meta(fs_.get(), inode));
    if (!dir) return ListExt4(path, inode);
    std::vector<FileInfo> out;
    std::unordered_map<std::string, uint64_t> inodes;
    for (size_t i = 0; i < tsk_fs_dir_getsize(dir.get()); ++i) {
      TskFile f(tsk_fs_dir_get(dir.get(), i));
      if (!f || !f->name || !f->name->name) continue;
      std::string name = f->name->name;
      if (name == "." || name == ".." || !(f->name->flags & TSK_FS_NAME_FLAG_ALLOC)) continue;
      if (!f->meta || IsFsInternal(f.get(), name, path)) continue;
      out.push_back(InfoOf(f.get(), name));
      inodes[name] = f->meta->addr;
    }
    listed_.Remember(path, std::move(inodes));
    return out;
  }

  Status ReadFile(const std::string& path,
                  const std::function<Status(uint64_t, std::span<const char>)>& sink) override {
    OFFHOST_ASSIGN_OR_RETURN(TskFile f, OpenRegular(path));
    return ReadData(f.get(), sink);
  }

  Result<std::vector<VolumeExtent>> Extents(const std::string& path) override {
    OFFHOST_ASSIGN_OR_RETURN(TskFile f, OpenRegular(path));
    if (LibtskCannotMap(f.get())) return ExtentsExt4(f.get());
    std::vector<VolumeExtent> out;
    const TSK_FS_ATTR* attr = tsk_fs_file_attr_get(f.get());  // the default data stream
    if (!attr) {
      tsk_error_reset();  // an empty file may have none
      return out;
    }
    // Resident (in the MFT record or inode) and compressed data have no plain disk blocks.
    if (!(attr->flags & TSK_FS_ATTR_NONRES) || (attr->flags & TSK_FS_ATTR_COMP)) return out;
    uint64_t block = fs_->block_size;
    // Past the initialized size NTFS reads zeros whatever the blocks hold; other file
    // systems set initsize to the size.
    uint64_t limit = static_cast<uint64_t>(std::max<TSK_OFF_T>(0, attr->nrd.initsize));
    limit = std::min(limit, static_cast<uint64_t>(f->meta->size));
    for (const TSK_FS_ATTR_RUN* run = attr->nrd.run; run; run = run->next) {
      if (run->flags & (TSK_FS_ATTR_RUN_FLAG_FILLER | TSK_FS_ATTR_RUN_FLAG_SPARSE |
                        TSK_FS_ATTR_RUN_FLAG_ENCRYPTED)) {
        continue;
      }
      uint64_t file_off = static_cast<uint64_t>(run->offset) * block;
      if (file_off >= limit) break;
      uint64_t len = std::min<uint64_t>(static_cast<uint64_t>(run->len) * block, limit - file_off);
      if (len == 0) continue;
      out.push_back({file_off, static_cast<uint64_t>(run->addr) * block, len});
    }
    return out;
  }

 private:
  // A child of a folder listed lately is opened by the inode its entry gave (ListedInodes).
  TSK_FS_FILE* OpenByPath(const std::string& path) {
    if (auto inode = listed_.Find(path)) return tsk_fs_file_open_meta(fs_.get(), nullptr, *inode);
    // Not for FAT and NTFS, whose names libtsk matches without regard to case.
    if (IsExt() && listed_.KnownAbsent(path)) return nullptr;
    TSK_FS_FILE* f = tsk_fs_file_open(fs_.get(), nullptr, path.c_str());
    if (f || !IsExt()) return f;
    Status read = TakeReadError(img_.get());
    if (!read.ok()) {
      failure_ = read;  // for Failure(): a read of the backup failed, the file may well be there
      return nullptr;
    }
    // A folder on the way that libtsk cannot map (ext4_raw.h): walk the path ourselves.
    auto inode = ResolveExt4(path);
    if (!inode.ok()) {
      if (inode.status().code() != StatusCode::kNotFound) failure_ = inode.status();
      return nullptr;
    }
    tsk_error_reset();
    return tsk_fs_file_open_meta(fs_.get(), nullptr, *inode);
  }

  // --- ext4 inodes libtsk 4.12 cannot map (ext4_raw.h) ---------------------------------------

  bool IsExt() const { return TSK_FS_TYPE_ISEXT(fs_->ftype); }

  static bool HasExtentTree(const TSK_FS_FILE* f) {
    return f->meta && f->meta->content_type == TSK_FS_META_CONTENT_TYPE_EXT4_EXTENTS &&
           f->meta->content_ptr && f->meta->content_len >= kExtentRootBytes;
  }

  // True when `f` is an ext4 inode with an extent tree that libtsk failed to load.
  bool LibtskCannotMap(TSK_FS_FILE* f) {
    if (!IsExt() || !HasExtentTree(f)) return false;
    if (tsk_fs_file_attr_get(f)) return false;
    tsk_error_reset();
    return f->meta->size > 0;
  }

  Result<std::vector<Ext4Run>> Ext4Runs(const TSK_FS_FILE* f) {
    // libtsk keeps i_block as 15 host-order words; the tree wants the on-disk bytes.
    std::string root(kExtentRootBytes, '\0');
    const auto* words = static_cast<const uint32_t*>(f->meta->content_ptr);
    for (size_t i = 0; i < kExtentRootBytes / 4; ++i) {
      for (size_t b = 0; b < 4; ++b) root[i * 4 + b] = static_cast<char>(words[i] >> (8 * b));
    }
    const uint64_t block = fs_->block_size;
    return ReadExt4ExtentTree(root, fs_->block_size, fs_->block_count,
                              [&](uint64_t n, std::span<char> out) {
                                ReadRequest r{n * block, out};
                                return volume_.Read({&r, 1});
                              });
  }

  // Reads the file's runs in order: holes and unwritten runs as zeros, up to its size.
  Status ReadExt4(TSK_FS_FILE* f,
                  const std::function<Status(uint64_t, std::span<const char>)>& sink) {
    OFFHOST_ASSIGN_OR_RETURN(auto runs, Ext4Runs(f));
    const uint64_t size = static_cast<uint64_t>(f->meta->size), block = fs_->block_size;
    std::vector<char> buf(1 << 20);
    size_t next = 0;
    for (uint64_t off = 0; off < size;) {
      while (next < runs.size() && (runs[next].file_block + runs[next].blocks) * block <= off)
        ++next;
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
      std::span<char> out(buf.data(), n);
      if (next < runs.size() && runs[next].file_block * block <= off) {
        const Ext4Run& r = runs[next];
        n = static_cast<size_t>(std::min<uint64_t>(n, (r.file_block + r.blocks) * block - off));
        out = out.first(n);
        if (r.unwritten) {
          std::fill(out.begin(), out.end(), 0);
        } else {
          ReadRequest req{r.disk_block * block + (off - r.file_block * block), out};
          OFFHOST_RETURN_IF_ERROR(volume_.Read({&req, 1}));
        }
      } else {  // a hole, up to the next run
        if (next < runs.size())
          n = static_cast<size_t>(std::min<uint64_t>(n, runs[next].file_block * block - off));
        out = out.first(n);
        std::fill(out.begin(), out.end(), 0);
      }
      OFFHOST_RETURN_IF_ERROR(sink(off, out));
      off += n;
    }
    return Status::OK();
  }

  Result<std::vector<VolumeExtent>> ExtentsExt4(TSK_FS_FILE* f) {
    OFFHOST_ASSIGN_OR_RETURN(auto runs, Ext4Runs(f));
    const uint64_t size = static_cast<uint64_t>(f->meta->size), block = fs_->block_size;
    std::vector<VolumeExtent> out;
    for (const Ext4Run& r : runs) {
      uint64_t file_off = r.file_block * block;
      if (file_off >= size) break;
      if (r.unwritten) continue;
      out.push_back({file_off, r.disk_block * block, std::min(r.blocks * block, size - file_off)});
    }
    return out;
  }

  // The live entries of folder `inode`, "." and ".." left out: libtsk's, or read from the
  // folder's blocks when libtsk cannot map them.
  Result<std::vector<Ext4DirEntry>> Ext4Entries(TSK_INUM_T inode) {
    TskFile dir(tsk_fs_file_open_meta(fs_.get(), nullptr, inode));
    if (!dir || !dir->meta) return Failure(Status::NotFound("no such directory"));
    if (dir->meta->type != TSK_FS_META_TYPE_DIR) return Status::NotFound("not a directory");
    // A hostile folder may claim gigabytes; real ones with millions of entries stay below.
    if (static_cast<uint64_t>(dir->meta->size) > kMaxFolderBytes) {
      return Status::Corruption("folder of " + std::to_string(dir->meta->size) +
                                " bytes, more than offhost reads");
    }
    const size_t block = fs_->block_size;
    std::vector<Ext4DirEntry> entries;
    std::string pending;  // a block not yet whole
    Status read = ReadData(dir.get(), [&](uint64_t, std::span<const char> bytes) {
      pending.append(bytes.data(), bytes.size());
      size_t at = 0;
      for (; at + block <= pending.size(); at += block) {
        std::span<const char> b(pending.data() + at, block);
        // A hole in the folder (Linux leaves them) reads as zeros: no entries.
        if (std::all_of(b.begin(), b.end(), [](char c) { return c == 0; })) continue;
        OFFHOST_RETURN_IF_ERROR(ParseExt4DirBlock(b, &entries));
      }
      pending.erase(0, at);
      return Status::OK();
    });
    OFFHOST_RETURN_IF_ERROR(read);
    std::erase_if(entries, [](const Ext4DirEntry& e) { return e.name == "." || e.name == ".."; });
    return entries;
  }

  // The data of a file or folder, through libtsk where it can map it.
  Status ReadData(TSK_FS_FILE* f,
                  const std::function<Status(uint64_t, std::span<const char>)>& sink) {
    if (LibtskCannotMap(f)) return ReadExt4(f, sink);
    std::vector<char> buf(1 << 20);
    uint64_t size = static_cast<uint64_t>(f->meta->size);
    for (uint64_t off = 0; off < size;) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
      ssize_t n = tsk_fs_file_read(f, static_cast<TSK_OFF_T>(off), buf.data(), want,
                                   TSK_FS_FILE_READ_FLAG_NONE);
      if (n <= 0) {
        Status read = TakeReadError(img_.get());
        if (!read.ok()) return read;
        return Status::IOError("read at offset " + std::to_string(off) + ": " + TskError());
      }
      OFFHOST_RETURN_IF_ERROR(sink(off, {buf.data(), static_cast<size_t>(n)}));
      off += static_cast<uint64_t>(n);
    }
    return Status::OK();
  }

  Result<TSK_INUM_T> ResolveExt4(const std::string& path) {
    TSK_INUM_T inode = fs_->root_inum;
    size_t at = 1;
    while (at < path.size()) {
      size_t end = path.find('/', at);
      if (end == std::string::npos) end = path.size();
      const std::string name = path.substr(at, end - at);
      at = end + 1;
      if (name.empty()) continue;
      OFFHOST_ASSIGN_OR_RETURN(auto entries, Ext4Entries(inode));
      auto it = std::find_if(entries.begin(), entries.end(),
                             [&](const Ext4DirEntry& e) { return e.name == name; });
      if (it == entries.end()) return Status::NotFound("no such file or directory");
      inode = it->inode;
    }
    return inode;
  }

  // Folder `path` (inode `inode`) when libtsk cannot open it.
  Result<std::vector<FileInfo>> ListExt4(const std::string& path, TSK_INUM_T inode) {
    if (!IsExt()) return Failure(Status::NotFound("no such directory"));
    Status read = TakeReadError(img_.get());
    if (!read.ok()) return read;
    tsk_error_reset();
    OFFHOST_ASSIGN_OR_RETURN(auto entries, Ext4Entries(inode));
    std::vector<FileInfo> out;
    std::unordered_map<std::string, uint64_t> inodes;
    for (const Ext4DirEntry& e : entries) {
      TskFile f(tsk_fs_file_open_meta(fs_.get(), nullptr, e.inode));
      if (!f || !f->meta) continue;  // as libtsk leaves out entries without an inode
      out.push_back(InfoOf(f.get(), e.name));
      inodes[e.name] = e.inode;
    }
    read = TakeReadError(img_.get());  // an inode in a missing chunk is not "no entry"
    if (!read.ok()) return read;
    listed_.Remember(path, std::move(inodes));
    return out;
  }

  static constexpr size_t kExtentRootBytes = 60;  // i_block
  static constexpr uint64_t kMaxFolderBytes = uint64_t{256} << 20;

  // A failed read left over from an earlier call is not the next call's failure.
  void ForgetReadError() {
    TakeReadError(img_.get()).IgnoreError();
    failure_ = Status::OK();
  }

  // Why a TSK call failed: a read of the backup that failed (a missing or damaged chunk),
  // which TSK reports as the file not being there, else `otherwise`.
  Status Failure(Status otherwise) {
    tsk_error_reset();
    Status read = TakeReadError(img_.get());
    if (read.ok()) read = std::exchange(failure_, Status::OK());
    return read.ok() ? otherwise : read;
  }

  Result<TskFile> OpenRegular(const std::string& path) {
    ForgetReadError();
    TskFile f(OpenByPath(path));
    if (!f || !f->meta) return Failure(Status::NotFound("no such file"));
    if (f->meta->type != TSK_FS_META_TYPE_REG) {
      return Status::InvalidArgument("not a regular file");
    }
    return f;
  }

  TskImg img_;  // declared first: destroyed after fs_, which reads through it
  TskFs fs_;
  BlockDevice& volume_;     // what img_ reads; outlives this reader
  Status failure_;          // why OpenByPath found nothing, when that was not "no such file"
  ListedInodes listed_;
};

// The file systems VM disks hold that libtsk reads, tried one by one. Not TSK_FS_TYPE_DETECT:
// when nothing matches, it goes on to measure the volume's entropy to report "possible
// encryption" and reads tens of MiB of a volume without a file system (random data, swap,
// a database device) on every backup. YAFFS2 (raw flash) and APFS (needs its pool) are left
// out for the same reason and because VM disks do not hold them. A libtsk that reads more
// types (later releases) needs them added here; XFS is read by libfsxfs (xfs_fs_reader.cc).
constexpr TSK_FS_TYPE_ENUM kTskTypes[] = {TSK_FS_TYPE_EXT_DETECT, TSK_FS_TYPE_NTFS_DETECT,
                                          TSK_FS_TYPE_FAT_DETECT, TSK_FS_TYPE_FFS_DETECT,
                                          TSK_FS_TYPE_HFS_DETECT, TSK_FS_TYPE_ISO9660_DETECT};

Result<std::unique_ptr<FsReader>> OpenTsk(BlockDevice& volume) {
  OFFHOST_ASSIGN_OR_RETURN(TskImg img, OpenTskImage(volume, volume.description()));
  for (TSK_FS_TYPE_ENUM type : kTskTypes) {
    TskFs fs(tsk_fs_open_img(img.get(), 0, type));
    if (fs) {
      return std::unique_ptr<FsReader>(new TskFsReader(std::move(img), std::move(fs), volume));
    }
    tsk_error_reset();
  }
  // A superblock in a missing or damaged chunk is not "no file system"
  Status read = TakeReadError(img.get());
  if (!read.ok()) return read;
  return Status::NotFound(
      "no file system libtsk reads (ext2/3/4, NTFS, FAT/exFAT, UFS, HFS+, "
      "ISO 9660)");
}

}  // namespace

OFFHOST_REGISTER_FS_READER("tsk", 100, OpenTsk);

}  // namespace offhost::mount::internal
