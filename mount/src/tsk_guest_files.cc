// GuestFiles over The Sleuth Kit: a TSK image whose reads go to a BlockDevice.
#include <tsk/libtsk.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "offhost/mount/guest_files.h"

namespace offhost::mount {
namespace {

// TSK requires the external image struct to start with TSK_IMG_INFO and be calloc'ed.
struct ExternalImage {
  TSK_IMG_INFO info;
  BlockDevice* device;
};

ssize_t ImageRead(TSK_IMG_INFO* img, TSK_OFF_T off, char* buf, size_t len) {
  auto* ext = reinterpret_cast<ExternalImage*>(img);
  uint64_t size = ext->device->size();
  if (off < 0 || static_cast<uint64_t>(off) >= size) return 0;
  len = std::min<uint64_t>(len, size - static_cast<uint64_t>(off));
  ReadRequest req{static_cast<uint64_t>(off), {buf, len}};
  if (!ext->device->Read({&req, 1}).ok()) return -1;
  return static_cast<ssize_t>(len);
}
void ImageClose(TSK_IMG_INFO* img) { std::free(img); }
void ImageStat(TSK_IMG_INFO*, FILE*) {}

std::string TskError() {
  const char* e = tsk_error_get();
  std::string s = e ? e : "unknown error";
  tsk_error_reset();
  return s;
}

struct ImgCloser {
  void operator()(TSK_IMG_INFO* i) const { tsk_img_close(i); }
};
struct VsCloser {
  void operator()(TSK_VS_INFO* v) const { tsk_vs_close(v); }
};
struct FsCloser {
  void operator()(TSK_FS_INFO* f) const { tsk_fs_close(f); }
};
struct FileCloser {
  void operator()(TSK_FS_FILE* f) const { tsk_fs_file_close(f); }
};
struct DirCloser {
  void operator()(TSK_FS_DIR* d) const { tsk_fs_dir_close(d); }
};

FileInfo InfoOf(const TSK_FS_FILE* f, const std::string& name) {
  FileInfo info;
  info.name = name;
  const TSK_FS_META* m = f->meta;
  if (!m) return info;
  switch (m->type) {
    case TSK_FS_META_TYPE_REG: info.type = FileType::kRegular; break;
    case TSK_FS_META_TYPE_DIR: info.type = FileType::kDirectory; break;
    case TSK_FS_META_TYPE_LNK: info.type = FileType::kSymlink; break;
    default: info.type = FileType::kOther;
  }
  info.size = static_cast<uint64_t>(m->size);
  info.mode = static_cast<uint32_t>(m->mode) & 07777;
  info.uid = static_cast<uint32_t>(m->uid);
  info.gid = static_cast<uint32_t>(m->gid);
  info.mtime = m->mtime;
  info.atime = m->atime;
  info.ctime = m->ctime;
  if (m->link) info.link_target = m->link;
  return info;
}

struct Volume {
  VolumeInfo info;
  std::unique_ptr<TSK_FS_INFO, FsCloser> fs;
};

class TskGuestFiles final : public GuestFiles {
 public:
  const std::vector<VolumeInfo>& volumes() const override { return infos_; }

  Status AddDisk(const GuestDisk& disk) {
    auto* ext = static_cast<ExternalImage*>(std::calloc(1, sizeof(ExternalImage)));
    if (!ext) return Status::IOError("out of memory");
    ext->device = disk.device;
    TSK_IMG_INFO* img = tsk_img_open_external(ext, static_cast<TSK_OFF_T>(disk.device->size()),
                                              512, ImageRead, ImageClose, ImageStat);
    if (!img) {
      std::free(ext);
      return Status::IOError("open disk " + disk.name + " for reading: " + TskError());
    }
    images_.emplace_back(img);
    std::unique_ptr<TSK_VS_INFO, VsCloser> vs(tsk_vs_open(img, 0, TSK_VS_TYPE_DETECT));
    if (!vs) {  // no partition table: a file system on the whole disk, or nothing readable
      tsk_error_reset();
      AddVolume(img, disk.name, 0, disk.device->size());
      return Status::OK();
    }
    int n = 0;
    for (TSK_PNUM_T i = 0; i < vs->part_count; ++i) {
      const TSK_VS_PART_INFO* p = tsk_vs_part_get(vs.get(), i);
      if (!p || !(p->flags & TSK_VS_PART_FLAG_ALLOC)) continue;
      uint64_t start = static_cast<uint64_t>(p->start) * vs->block_size;
      uint64_t len = static_cast<uint64_t>(p->len) * vs->block_size;
      AddVolume(img, disk.name + std::to_string(++n), start, len);
    }
    return Status::OK();
  }

  Result<FileInfo> Stat(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    OFFHOST_ASSIGN_OR_RETURN(auto where, Resolve(path));
    auto [vol, inner] = where;
    if (!vol) return FileInfo{"/", FileType::kDirectory, 0, 0755, 0, 0, 0, 0, 0, ""};
    if (inner == "/") {
      std::unique_ptr<TSK_FS_FILE, FileCloser> root(tsk_fs_file_open(vol->fs.get(), nullptr, "/"));
      if (root) return InfoOf(root.get(), vol->info.name);
      return FileInfo{vol->info.name, FileType::kDirectory, 0, 0755, 0, 0, 0, 0, 0, ""};
    }
    std::unique_ptr<TSK_FS_FILE, FileCloser> f(tsk_fs_file_open(vol->fs.get(), nullptr, inner.c_str()));
    if (!f || !f->meta) {
      tsk_error_reset();
      return Status::NotFound(path + ": no such file or directory in the backup");
    }
    return InfoOf(f.get(), inner.substr(inner.rfind('/') + 1));
  }

  Result<std::vector<FileInfo>> List(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    OFFHOST_ASSIGN_OR_RETURN(auto where, Resolve(path));
    auto [vol, inner] = where;
    std::vector<FileInfo> out;
    if (!vol) {
      for (const auto& v : volumes_) {
        if (v->fs) out.push_back({v->info.name, FileType::kDirectory, 0, 0755, 0, 0, 0, 0, 0, ""});
      }
      return out;
    }
    std::unique_ptr<TSK_FS_DIR, DirCloser> dir(tsk_fs_dir_open(vol->fs.get(), inner.c_str()));
    if (!dir) {
      tsk_error_reset();
      return Status::NotFound(path + ": no such directory in the backup");
    }
    std::map<std::string, FileInfo> sorted;  // file systems may list a name more than once
    for (size_t i = 0; i < tsk_fs_dir_getsize(dir.get()); ++i) {
      std::unique_ptr<TSK_FS_FILE, FileCloser> f(tsk_fs_dir_get(dir.get(), i));
      if (!f || !f->name || !f->name->name) continue;
      std::string name = f->name->name;
      if (name == "." || name == ".." || !(f->name->flags & TSK_FS_NAME_FLAG_ALLOC)) continue;
      if (!f->meta) continue;
      // NTFS and FAT expose their metadata files ($MFT, $OrphanFiles...): not guest files.
      if (name.starts_with("$") && inner == "/") continue;
      sorted[name] = InfoOf(f.get(), name);
    }
    for (auto& [n, info] : sorted) out.push_back(std::move(info));
    return out;
  }

  Status ReadFile(const std::string& path,
                  const std::function<Status(uint64_t, std::span<const char>)>& sink) override {
    std::lock_guard<std::mutex> lock(mu_);
    OFFHOST_ASSIGN_OR_RETURN(auto where, Resolve(path));
    auto [vol, inner] = where;
    if (!vol) return Status::InvalidArgument(path + " is a directory");
    std::unique_ptr<TSK_FS_FILE, FileCloser> f(tsk_fs_file_open(vol->fs.get(), nullptr, inner.c_str()));
    if (!f || !f->meta) {
      tsk_error_reset();
      return Status::NotFound(path + ": no such file in the backup");
    }
    std::vector<char> buf(1 << 20);
    uint64_t size = static_cast<uint64_t>(f->meta->size);
    for (uint64_t off = 0; off < size;) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
      ssize_t n = tsk_fs_file_read(f.get(), static_cast<TSK_OFF_T>(off), buf.data(), want,
                                   TSK_FS_FILE_READ_FLAG_NONE);
      if (n <= 0) {
        return Status::IOError("read " + path + " at offset " + std::to_string(off) + ": " +
                               TskError());
      }
      OFFHOST_RETURN_IF_ERROR(sink(off, {buf.data(), static_cast<size_t>(n)}));
      off += static_cast<uint64_t>(n);
    }
    return Status::OK();
  }

 private:
  void AddVolume(TSK_IMG_INFO* img, const std::string& name, uint64_t offset, uint64_t length) {
    auto v = std::make_unique<Volume>();
    v->info.name = name;
    v->info.offset = offset;
    v->info.length = length;
    v->fs.reset(tsk_fs_open_img(img, static_cast<TSK_OFF_T>(offset), TSK_FS_TYPE_DETECT));
    if (v->fs) {
      v->info.fs_type = tsk_fs_type_toname(v->fs->ftype);
    } else {
      v->info.not_indexed = "not indexed: " + TskError();
    }
    infos_.push_back(v->info);
    volumes_.push_back(std::move(v));
  }

  // Splits "/vda1/etc/x" into the volume and "/etc/x"; "/" gives no volume.
  Result<std::pair<Volume*, std::string>> Resolve(const std::string& path) {
    if (path.empty() || path[0] != '/') {
      return Status::InvalidArgument("path '" + path + "' must start with / (e.g. /vda1/etc)");
    }
    std::string rest = path.substr(1);
    while (!rest.empty() && rest.back() == '/') rest.pop_back();
    if (rest.empty()) return std::make_pair(static_cast<Volume*>(nullptr), std::string("/"));
    std::string vol_name = rest.substr(0, rest.find('/'));
    std::string inner = rest.find('/') == std::string::npos ? "/" : rest.substr(rest.find('/'));
    for (auto& v : volumes_) {
      if (v->info.name != vol_name) continue;
      if (!v->fs) return Status::NotSupported("volume " + vol_name + " is " + v->info.not_indexed);
      return std::make_pair(v.get(), inner);
    }
    std::string names;
    for (auto& v : volumes_) names += (names.empty() ? "" : ", ") + v->info.name;
    return Status::NotFound("no volume '" + vol_name + "' in this backup (it has: " + names + ")");
  }

  std::mutex mu_;  // TSK handles are not safe for concurrent use
  std::vector<std::unique_ptr<TSK_IMG_INFO, ImgCloser>> images_;
  std::vector<std::unique_ptr<Volume>> volumes_;
  std::vector<VolumeInfo> infos_;
};

}  // namespace

Result<std::unique_ptr<GuestFiles>> GuestFiles::Open(const std::vector<GuestDisk>& disks) {
  auto g = std::make_unique<TskGuestFiles>();
  for (const auto& d : disks) OFFHOST_RETURN_IF_ERROR(g->AddDisk(d));
  return std::unique_ptr<GuestFiles>(std::move(g));
}

}  // namespace offhost::mount
