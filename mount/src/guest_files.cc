// GuestFiles: the volumes volume_discovery.cc finds, each opened by the first registered
// file-system reader that claims it (fs_reader.h), behind one path space "/VOLUME/path".
#include "offhost/mount/guest_files.h"

#include <map>
#include <mutex>

#include "fs_reader.h"
#include "volume_discovery.h"

namespace offhost::mount {
namespace {

using internal::FoundVolume;
using internal::FsReader;

FileInfo VolumeDir(const std::string& name) {
  return FileInfo{name, FileType::kDirectory, 0, 0755, 0, 0, 0, 0, 0, ""};
}

struct Volume {
  FoundVolume found;
  std::unique_ptr<FsReader> fs;
};

class GuestFilesImpl final : public GuestFiles {
 public:
  explicit GuestFilesImpl(std::vector<FoundVolume> found) {
    for (auto& f : found) {
      auto v = std::make_unique<Volume>();
      v->found = std::move(f);
      if (v->found.may_hold_files && v->found.device) {
        auto fs = internal::OpenFileSystem(*v->found.device);
        if (fs.ok()) {
          v->fs = std::move(*fs);
          v->found.info.fs_type = v->fs->fs_type();
        } else {
          v->found.info.not_indexed = "not indexed: " + fs.status().message();
        }
      }
      infos_.push_back(v->found.info);
      volumes_.push_back(std::move(v));
    }
  }

  const std::vector<VolumeInfo>& volumes() const override { return infos_; }

  Result<FileInfo> Stat(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    OFFHOST_ASSIGN_OR_RETURN(auto where, Resolve(path));
    auto [vol, inner] = where;
    if (!vol) return VolumeDir("/");
    auto info = vol->fs->Stat(inner);
    if (!info.ok()) return Failed(info.status(), "stat", path, "no such file or directory");
    if (inner == "/") info->name = vol->found.info.name;
    return info;
  }

  Result<std::vector<FileInfo>> List(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    OFFHOST_ASSIGN_OR_RETURN(auto where, Resolve(path));
    auto [vol, inner] = where;
    std::vector<FileInfo> out;
    if (!vol) {
      for (const auto& v : volumes_) {
        if (v->fs) out.push_back(VolumeDir(v->found.info.name));
      }
      return out;
    }
    auto list = vol->fs->List(inner);
    if (!list.ok()) return Failed(list.status(), "list", path, "no such directory");
    std::map<std::string, FileInfo> sorted;  // file systems may list a name more than once
    for (auto& info : *list) sorted[info.name] = std::move(info);
    for (auto& [n, info] : sorted) out.push_back(std::move(info));
    return out;
  }

  Status ReadFile(const std::string& path,
                  const std::function<Status(uint64_t, std::span<const char>)>& sink) override {
    std::lock_guard<std::mutex> lock(mu_);
    OFFHOST_ASSIGN_OR_RETURN(auto where, Resolve(path));
    auto [vol, inner] = where;
    if (!vol) return Status::InvalidArgument(path + " is a directory");
    Status st = vol->fs->ReadFile(inner, sink);
    if (!st.ok()) return Failed(st, "read", path, "no such file");
    return st;
  }

  Result<std::vector<FileExtent>> Extents(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    OFFHOST_ASSIGN_OR_RETURN(auto where, Resolve(path));
    auto [vol, inner] = where;
    if (!vol) return Status::InvalidArgument(path + " is a directory");
    auto extents = vol->fs->Extents(inner);
    if (!extents.ok()) return Failed(extents.status(), "map", path, "no such file");
    std::vector<FileExtent> out;
    for (const auto& e : *extents) {
      // A logical volume's extent may continue in another segment, elsewhere on the disk.
      auto ranges = vol->found.device->MapToDisks(e.volume_offset, e.length);
      if (!ranges.ok()) {
        return Status::Corruption("map " + path + ": the file system places data outside " +
                                  vol->found.info.name + ": " + ranges.status().message());
      }
      for (const auto& r : *ranges) {
        uint64_t file_off = e.file_offset + (r.volume_offset - e.volume_offset);
        const std::string& disk = r.piece->disk_name;
        if (!out.empty() && out.back().disk == disk &&
            out.back().file_offset + out.back().length == file_off &&
            out.back().disk_offset + out.back().length == r.disk_offset) {
          out.back().length += r.length;  // contiguous in the file and on the disk
        } else {
          out.push_back({file_off, r.disk_offset, r.length, disk});
        }
      }
    }
    return out;
  }

 private:
  // Reader errors name no path: add it, keeping "not found" messages short and familiar.
  static Status Failed(const Status& st, const std::string& op, const std::string& path,
                       const std::string& not_found) {
    if (st.code() == StatusCode::kNotFound) {
      return Status::NotFound(path + ": " + not_found + " in the backup");
    }
    if (st.code() == StatusCode::kInvalidArgument) {
      return Status::InvalidArgument(path + ": " + st.message());
    }
    return st.WithContext(op + " " + path);
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
      if (v->found.info.name != vol_name) continue;
      if (!v->fs) {
        return Status::NotSupported("volume " + vol_name + " is " + v->found.info.not_indexed);
      }
      return std::make_pair(v.get(), inner);
    }
    std::string names;
    for (auto& v : volumes_) names += (names.empty() ? "" : ", ") + v->found.info.name;
    return Status::NotFound("no volume '" + vol_name + "' in this backup (it has: " + names + ")");
  }

  std::mutex mu_;  // the libtsk and libyal handles are not safe for concurrent use
  std::vector<std::unique_ptr<Volume>> volumes_;
  std::vector<VolumeInfo> infos_;
};

}  // namespace

Result<std::unique_ptr<GuestFiles>> GuestFiles::Open(const std::vector<GuestDisk>& disks) {
  OFFHOST_ASSIGN_OR_RETURN(auto found, internal::DiscoverVolumes(disks));
  return std::unique_ptr<GuestFiles>(new GuestFilesImpl(std::move(found)));
}

}  // namespace offhost::mount
