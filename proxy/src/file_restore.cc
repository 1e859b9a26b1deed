#include "offhost/proxy/file_restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "offhost/storage/snapshot_disk.h"

namespace offhost::proxy {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// A guest name is used as one path component only: no separators, no "." or "..".
std::string UnsafeNameReason(const std::string& name) {
  if (name.empty()) return "empty name";
  if (name == "." || name == "..") return "name '" + name + "'";
  if (name.find('/') != std::string::npos) return "name contains '/'";
  if (name.size() > 255) return "name longer than 255 bytes";
  return "";
}

timespec Ts(int64_t t) { return timespec{static_cast<time_t>(t), 0}; }

class Restorer {
 public:
  // `root` is the target folder; `shown_root` how it is shown (names below it follow a '/').
  Restorer(mount::GuestFiles& files, const FileRestoreOptions& options, int root,
           const std::string& shown_root)
      : files_(files), options_(options), root_(root), shown_root_(shown_root) {}

  Status Restore(int dirfd, const std::string& guest_path, const mount::FileInfo& info,
                 const std::string& shown) {
    if (auto why = UnsafeNameReason(info.name); !why.empty()) {
      result.skipped.push_back(guest_path + ": " + why);
      return Status::OK();
    }
    switch (info.type) {
      case mount::FileType::kDirectory:
        return RestoreDir(dirfd, guest_path, info, shown);
      case mount::FileType::kRegular:
        return RestoreFile(dirfd, guest_path, info, shown);
      case mount::FileType::kSymlink:
        return RestoreLink(dirfd, info, shown);
      default:
        result.skipped.push_back(guest_path + ": not a file, folder or symlink");
        return Status::OK();
    }
  }

  FileRestoreResult result;

 private:
  // Clears the way for `name` in dirfd: refused unless --overwrite; a directory stays.
  Status MakeRoom(int dirfd, const std::string& name, bool want_dir, const std::string& shown) {
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::OK();
    if (want_dir && S_ISDIR(st.st_mode)) return Status::OK();
    if (!options_.overwrite) {
      return Status::AlreadyExists(shown + " already exists; pass --overwrite to replace it");
    }
    // unlinkat never follows a symlink: the link itself goes, not what it points to.
    if (::unlinkat(dirfd, name.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0) {
      return Status::FromErrno("replace " + shown, errno);
    }
    return Status::OK();
  }

  void SetOwner(int dirfd, const std::string& name, const mount::FileInfo& info) {
    if (::geteuid() == 0) {
      ::fchownat(dirfd, name.c_str(), info.uid, info.gid, AT_SYMLINK_NOFOLLOW);
    }
  }

  void SetTimes(int dirfd, const std::string& name, const mount::FileInfo& info) {
    timespec times[2] = {Ts(info.atime), Ts(info.mtime)};
    ::utimensat(dirfd, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
  }

  Status RestoreDir(int dirfd, const std::string& guest_path, const mount::FileInfo& info,
                    const std::string& shown) {
    OFFHOST_RETURN_IF_ERROR(MakeRoom(dirfd, info.name, true, shown));
    if (::mkdirat(dirfd, info.name.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::FromErrno("create folder " + shown, errno);
    }
    Fd sub(::openat(dirfd, info.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (sub.get() < 0) return Status::FromErrno("open folder " + shown, errno);
    ++result.directories;
    OFFHOST_ASSIGN_OR_RETURN(auto children, files_.List(guest_path));
    for (const auto& child : children) {
      OFFHOST_RETURN_IF_ERROR(
          Restore(sub.get(), guest_path + "/" + child.name, child, shown + "/" + child.name));
    }
    SetOwner(dirfd, info.name, info);
    ::fchmod(sub.get(), Mode(info.mode ? info.mode : 0755));
    SetTimes(dirfd, info.name, info);  // after the children, which touch it
    return Status::OK();
  }

  // A file with several names restored before under another: link this name to it. The
  // first name is relative to the target, made of names this restore created (each checked
  // by UnsafeNameReason), and its folders are opened one by one without following a symlink,
  // as everywhere else here. A link that fails (a target file system without hard links)
  // leaves a copy.
  bool LinkedToEarlierName(int dirfd, const mount::FileInfo& info) {
    if (info.links < 2 || info.inode == 0) return false;
    auto it = first_name_.find(info.inode);
    if (it == first_name_.end()) return false;
    const std::string& first = it->second;
    Fd folder(::dup(root_));
    size_t at = 0;
    for (size_t slash; (slash = first.find('/', at)) != std::string::npos; at = slash + 1) {
      const std::string name = first.substr(at, slash - at);
      folder =
          Fd(::openat(folder.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (folder.get() < 0) return false;
    }
    const std::string last = first.substr(at);
    if (::linkat(folder.get(), last.c_str(), dirfd, info.name.c_str(), 0) != 0) return false;
    ++result.files;
    ++result.hard_links;
    return true;
  }

  Status RestoreFile(int dirfd, const std::string& guest_path, const mount::FileInfo& info,
                     const std::string& shown) {
    OFFHOST_RETURN_IF_ERROR(MakeRoom(dirfd, info.name, false, shown));
    if (LinkedToEarlierName(dirfd, info)) return Status::OK();
    Fd fd(::openat(dirfd, info.name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   0600));
    if (fd.get() < 0) return Status::FromErrno("create " + shown, errno);
    static const char kZero[4096] = {};
    OFFHOST_RETURN_IF_ERROR(
        files_.ReadFile(guest_path, [&](uint64_t off, std::span<const char> data) {
          // Zero blocks are not written, so a sparse file stays sparse.
          for (size_t pos = 0; pos < data.size(); pos += sizeof kZero) {
            size_t n = std::min(sizeof kZero, data.size() - pos);
            if (std::memcmp(data.data() + pos, kZero, n) == 0) continue;
            if (::pwrite(fd.get(), data.data() + pos, n, static_cast<off_t>(off + pos)) !=
                static_cast<ssize_t>(n)) {
              return Status::FromErrno("write " + shown, errno);
            }
          }
          result.bytes += data.size();
          return Status::OK();
        }));
    if (::ftruncate(fd.get(), static_cast<off_t>(info.size)) != 0) {
      return Status::FromErrno("size " + shown, errno);
    }
    SetOwner(dirfd, info.name, info);
    ::fchmod(fd.get(), Mode(info.mode));
    SetTimes(dirfd, info.name, info);
    ++result.files;
    if (info.links > 1 && info.inode != 0 && shown.size() > shown_root_.size() + 1) {
      first_name_.emplace(info.inode, shown.substr(shown_root_.size() + 1));
    }
    return Status::OK();
  }

  Status RestoreLink(int dirfd, const mount::FileInfo& info, const std::string& shown) {
    OFFHOST_RETURN_IF_ERROR(MakeRoom(dirfd, info.name, false, shown));
    // The target is stored as the guest had it and never resolved here.
    if (::symlinkat(info.link_target.c_str(), dirfd, info.name.c_str()) != 0) {
      return Status::FromErrno("create symlink " + shown, errno);
    }
    SetOwner(dirfd, info.name, info);
    SetTimes(dirfd, info.name, info);
    ++result.symlinks;
    return Status::OK();
  }

  mount::GuestFiles& files_;
  mode_t Mode(uint32_t guest_mode) const {
    return options_.keep_setid ? guest_mode
                               : guest_mode & ~static_cast<uint32_t>(S_ISUID | S_ISGID);
  }

  const FileRestoreOptions& options_;
  int root_;
  std::string shown_root_;
  std::unordered_map<uint64_t, std::string> first_name_;  // inode → its first name restored
};

}  // namespace

Result<std::unique_ptr<SnapshotFiles>> SnapshotFiles::Open(storage::Datastore& ds,
                                                           const storage::SnapshotRecord& snap) {
  std::unique_ptr<SnapshotFiles> s(new SnapshotFiles());
  std::vector<mount::GuestDisk> guest;
  for (const auto& d : snap.disks) {
    OFFHOST_ASSIGN_OR_RETURN(auto dev, storage::OpenSnapshotDisk(ds, snap, d.name));
    guest.push_back({d.name, dev.get()});
    s->disks_.push_back(std::move(dev));
  }
  OFFHOST_ASSIGN_OR_RETURN(s->files_, mount::GuestFiles::Open(guest));
  return s;
}

Result<FileRestoreResult> RestoreFiles(mount::GuestFiles& files, const std::string& path,
                                       const std::string& target_dir,
                                       const FileRestoreOptions& options) {
  Fd target(::open(target_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (target.get() < 0) {
    return Status::FromErrno(
        "open target folder " + target_dir + " (it must be an existing directory)", errno);
  }
  OFFHOST_ASSIGN_OR_RETURN(mount::FileInfo info, files.Stat(path));
  if (path == "/" || info.name.empty() || info.name == "/") {
    return Status::InvalidArgument("give a file or folder inside a volume, e.g. /vda1/etc");
  }
  Restorer r(files, options, target.get(), target_dir);
  OFFHOST_RETURN_IF_ERROR(r.Restore(target.get(), path, info, target_dir + "/" + info.name));
  return r.result;
}

}  // namespace offhost::proxy
