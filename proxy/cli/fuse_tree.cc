// The FUSE callbacks (high-level, path-based API: GuestFiles is path-based too) over
// GuestFiles, and the mount / serve / unmount cycle.
#define FUSE_USE_VERSION 31
#include "fuse_tree.h"

#include <fcntl.h>
#include <fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <unordered_map>
#include <vector>

namespace offhost::cli {
namespace {

// The kernel may keep names and attributes as long as it likes: a backup never changes.
constexpr double kCacheSeconds = 86400;

int ErrnoOf(const Status& st) {
  switch (st.code()) {
    case StatusCode::kOk:
      return 0;
    case StatusCode::kNotFound:
      return ENOENT;
    case StatusCode::kInvalidArgument:
      return EINVAL;
    case StatusCode::kNotSupported:
      return EOPNOTSUPP;
    default:
      return EIO;
  }
}

// A name the kernel can take as one path component.
bool UsableName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= 255 &&
         name.find('/') == std::string::npos;
}

struct OpenFile {
  std::string guest_path;
  uint64_t size;
};

class Tree {
 public:
  Tree(mount::GuestFiles& files, const FuseMountOptions& options)
      : files_(files),
        options_(options),
        cache_([&files](const std::string& path,
                        const auto& sink) { return files.ReadFile(path, sink); },
               options.cache) {
    while (options_.root.size() > 1 && options_.root.back() == '/') options_.root.pop_back();
  }

  int GetAttr(const char* path, struct stat* st) {
    std::string guest = GuestPath(path);
    auto info = files_.Stat(guest);
    if (!info.ok()) return Fail("stat", guest, info.status());
    Fill(*info, guest, st);
    return 0;
  }

  int ReadLink(const char* path, char* buf, size_t size) {
    std::string guest = GuestPath(path);
    auto info = files_.Stat(guest);
    if (!info.ok()) return Fail("readlink", guest, info.status());
    if (info->type != mount::FileType::kSymlink) return -EINVAL;
    if (size == 0) return -EINVAL;
    size_t n = std::min(size - 1, info->link_target.size());  // truncated like readlink(2)
    std::memcpy(buf, info->link_target.data(), n);
    buf[n] = '\0';
    return 0;
  }

  int ReadDir(const char* path, void* buf, fuse_fill_dir_t filler) {
    std::string guest = GuestPath(path);
    auto list = files_.List(guest);
    if (!list.ok()) return Fail("list", guest, list.status());
    filler(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    filler(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    for (const auto& e : *list) {
      if (!UsableName(e.name)) {
        Log("list " + guest + ": skipped a name the host cannot show ('" + e.name + "')");
        continue;
      }
      if (guest == "/") {  // volumes: List has no attributes for them, getattr (Stat) does
        if (filler(buf, e.name.c_str(), nullptr, 0, static_cast<fuse_fill_dir_flags>(0)) != 0)
          break;
        continue;
      }
      struct stat st;
      Fill(e, Join(guest, e.name), &st);
      if (filler(buf, e.name.c_str(), &st, 0, FUSE_FILL_DIR_PLUS) != 0) break;
    }
    return 0;
  }

  int Open(const char* path, fuse_file_info* fi) {
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) return -EROFS;
    std::string guest = GuestPath(path);
    auto info = files_.Stat(guest);
    if (!info.ok()) return Fail("open", guest, info.status());
    if (info->type == mount::FileType::kDirectory) return -EISDIR;
    uint64_t fh = next_fh_++;
    open_[fh] = OpenFile{guest, info->type == mount::FileType::kRegular ? info->size : 0};
    ++open_count_[guest];
    fi->fh = fh;
    fi->keep_cache = 1;  // the content never changes
    return 0;
  }

  int Read(char* buf, size_t size, off_t offset, fuse_file_info* fi) {
    auto f = open_.find(fi->fh);
    if (f == open_.end()) return -EBADF;
    if (offset < 0) return -EINVAL;
    const OpenFile& file = f->second;
    auto n = cache_.Read(file.guest_path, file.size, static_cast<uint64_t>(offset), {buf, size});
    if (!n.ok()) return Fail("read", file.guest_path, n.status());
    return static_cast<int>(*n);
  }

  int Release(fuse_file_info* fi) {
    auto f = open_.find(fi->fh);
    if (f == open_.end()) return 0;
    std::string guest = std::move(f->second.guest_path);
    open_.erase(f);
    auto it = open_count_.find(guest);
    if (it != open_count_.end() && --it->second == 0) {
      open_count_.erase(it);
      cache_.Forget(guest);  // the kernel keeps what it read in its page cache
    }
    return 0;
  }

  int StatFs(struct statvfs* st) {
    std::memset(st, 0, sizeof *st);
    uint64_t bytes = 0;
    for (const auto& v : files_.volumes()) {
      if (!v.fs_type.empty()) bytes += v.length;
    }
    st->f_bsize = st->f_frsize = 4096;
    st->f_blocks = bytes / 4096;
    st->f_namemax = 255;
    return 0;
  }

 private:
  std::string GuestPath(const char* path) const {
    std::string p = path;
    if (options_.root == "/") return p;
    return p == "/" ? options_.root : options_.root + p;
  }

  static std::string Join(const std::string& dir, const std::string& name) {
    return dir == "/" ? "/" + name : dir + "/" + name;
  }

  void Fill(const mount::FileInfo& info, const std::string& guest, struct stat* st) const {
    std::memset(st, 0, sizeof *st);
    mode_t type = S_IFREG;  // devices, FIFOs and sockets (kOther) show as empty files
    switch (info.type) {
      case mount::FileType::kDirectory:
        type = S_IFDIR;
        break;
      case mount::FileType::kSymlink:
        type = S_IFLNK;
        break;
      default:
        break;
    }
    st->st_mode = type | (info.mode & 07777);
    st->st_nlink = info.type == mount::FileType::kDirectory ? 2 : 1;
    st->st_uid = info.uid;
    st->st_gid = info.gid;
    st->st_size =
        static_cast<off_t>(info.type == mount::FileType::kOther     ? 0
                           : info.type == mount::FileType::kSymlink ? info.link_target.size()
                                                                    : info.size);
    st->st_blksize = 4096;
    st->st_blocks = (st->st_size + 511) / 512;
    bool top = guest == "/";  // the list of volumes: no times of its own
    st->st_mtim.tv_sec = top ? options_.root_time : info.mtime;
    st->st_atim.tv_sec = top ? options_.root_time : info.atime;
    st->st_ctim.tv_sec = top ? options_.root_time : info.ctime;
  }

  // Errors other than "no such file" are worth a line on stderr: they say what broke.
  int Fail(const char* op, const std::string& guest, const Status& st) {
    int err = ErrnoOf(st);
    if (err != ENOENT) Log(std::string(op) + " " + guest + ": " + st.message());
    return -err;
  }

  static void Log(const std::string& line) { std::cerr << "offhost: mount: " << line << "\n"; }

  mount::GuestFiles& files_;
  FuseMountOptions options_;
  FileReadCache cache_;
  std::unordered_map<uint64_t, OpenFile> open_;      // by file handle
  std::unordered_map<std::string, int> open_count_;  // open handles by guest path
  uint64_t next_fh_ = 1;
};

Tree& Self() { return *static_cast<Tree*>(fuse_get_context()->private_data); }

void* OpInit(fuse_conn_info*, fuse_config* cfg) {
  cfg->entry_timeout = cfg->attr_timeout = cfg->negative_timeout = kCacheSeconds;
  cfg->kernel_cache = 1;
  return fuse_get_context()->private_data;
}
int OpGetAttr(const char* path, struct stat* st, fuse_file_info*) {
  return Self().GetAttr(path, st);
}
int OpReadLink(const char* path, char* buf, size_t size) {
  return Self().ReadLink(path, buf, size);
}
int OpReadDir(const char* path, void* buf, fuse_fill_dir_t filler, off_t, fuse_file_info*,
              fuse_readdir_flags) {
  return Self().ReadDir(path, buf, filler);
}
int OpOpen(const char* path, fuse_file_info* fi) { return Self().Open(path, fi); }
int OpRead(const char*, char* buf, size_t size, off_t offset, fuse_file_info* fi) {
  return Self().Read(buf, size, offset, fi);
}
int OpRelease(const char*, fuse_file_info* fi) { return Self().Release(fi); }
int OpStatFs(const char*, struct statvfs* st) { return Self().StatFs(st); }

// Everything that would change the tree: the mount is read-only, so the kernel already
// answers EROFS; these only make sure.
int OpWriteLike() { return -EROFS; }
int OpWrite(const char*, const char*, size_t, off_t, fuse_file_info*) { return OpWriteLike(); }
int OpCreate(const char*, mode_t, fuse_file_info*) { return OpWriteLike(); }
int OpMkdir(const char*, mode_t) { return OpWriteLike(); }
int OpUnlink(const char*) { return OpWriteLike(); }
int OpRename(const char*, const char*, unsigned int) { return OpWriteLike(); }
int OpTruncate(const char*, off_t, fuse_file_info*) { return OpWriteLike(); }
int OpChmod(const char*, mode_t, fuse_file_info*) { return OpWriteLike(); }
int OpChown(const char*, uid_t, gid_t, fuse_file_info*) { return OpWriteLike(); }
int OpUtimens(const char*, const timespec*, fuse_file_info*) { return OpWriteLike(); }
int OpSymlink(const char*, const char*) { return OpWriteLike(); }
int OpLink(const char*, const char*) { return OpWriteLike(); }

fuse_operations MakeOperations() {
  fuse_operations ops;
  std::memset(&ops, 0, sizeof ops);
  ops.init = OpInit;
  ops.getattr = OpGetAttr;
  ops.readlink = OpReadLink;
  ops.readdir = OpReadDir;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.release = OpRelease;
  ops.statfs = OpStatFs;
  ops.write = OpWrite;
  ops.create = OpCreate;
  ops.mkdir = OpMkdir;
  ops.unlink = OpUnlink;
  ops.rmdir = OpUnlink;
  ops.rename = OpRename;
  ops.truncate = OpTruncate;
  ops.chmod = OpChmod;
  ops.chown = OpChown;
  ops.utimens = OpUtimens;
  ops.symlink = OpSymlink;
  ops.link = OpLink;
  return ops;
}

struct FuseDeleter {
  void operator()(fuse* f) const { fuse_destroy(f); }
};

}  // namespace

Status ServeFuse(mount::GuestFiles& files, const FuseMountOptions& options,
                 const std::function<void()>& mounted) {
  Tree tree(files, options);
  static const fuse_operations kOps = MakeOperations();

  std::string mount_opts = "ro,subtype=offhost,fsname=" + options.fsname;
  if (options.allow_other) mount_opts += ",allow_other,default_permissions";
  std::vector<std::string> argv_s = {"offhost", "-o", mount_opts};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  std::unique_ptr<fuse, FuseDeleter> f(fuse_new(&args, &kOps, sizeof kOps, &tree));
  fuse_opt_free_args(&args);
  if (!f) return Status::InvalidArgument("FUSE rejected the mount options '" + mount_opts + "'");

  if (fuse_mount(f.get(), options.mountpoint.c_str()) != 0) {
    return Status::Unavailable("mount " + options.fsname + " at " + options.mountpoint +
                               " failed (libfuse said why above); is /dev/fuse usable and "
                               "fusermount3 installed (Debian package fuse3)?");
  }
  fuse_session* se = fuse_get_session(f.get());
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_unmount(f.get());
    return Status::Unavailable("set signal handlers for the FUSE loop");
  }
  if (mounted) mounted();
  int rc = fuse_loop(f.get());  // 0: unmounted; > 0: the signal that stopped it; < 0: -errno
  fuse_remove_signal_handlers(se);
  fuse_unmount(f.get());
  if (rc < 0) return Status::FromErrno("serve " + options.mountpoint, -rc);
  return Status::OK();
}

}  // namespace offhost::cli
