#include "catalog_browse.h"

#include <algorithm>

#include "file_info.h"
#include "offhost/proxy/catalog.h"
#include "offhost/proxy/file_restore.h"

namespace offhost::grpcapi {
namespace {

// The volume a path starts with ("vda1" for "/vda1/etc"); empty for "/".
std::string VolumeOf(const std::string& path) {
  size_t start = path.find_first_not_of('/');
  if (start == std::string::npos) return "";
  size_t end = path.find('/', start);
  return path.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// Whether `path` names the volume itself ("/vda1", "/vda1/").
bool IsVolumePath(const std::string& path) {
  std::string v = VolumeOf(path);
  if (v.empty()) return false;
  size_t after = path.find(v) + v.size();
  return path.find_first_not_of('/', after) == std::string::npos;
}

v1::FileInfo RootFolder() {
  v1::FileInfo root;
  root.set_name("/");
  root.set_type(v1::FILE_TYPE_DIRECTORY);
  root.set_mode(0755);
  return root;
}

std::vector<std::string> DiskNames(const storage::SnapshotRecord& snap) {
  std::vector<std::string> names;
  for (const auto& d : snap.disks) names.push_back(d.name);
  return names;
}

// --- from the catalog

const storage::CatalogVolume* CatalogVolumeOf(const BrowseTarget& t, const std::string& path) {
  std::string name = VolumeOf(path);
  for (const auto& v : t.catalog->volumes) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

// A volume whose files were not indexed cannot be browsed, which is not the path's fault.
Status CheckIndexed(const BrowseTarget& t, const std::string& path) {
  const storage::CatalogVolume* v = CatalogVolumeOf(t, path);
  if (v && !v->not_indexed.empty()) {
    return Status::FailedPrecondition("volume " + v->name +
                                      " has no files in the catalog: " + v->not_indexed);
  }
  return Status::OK();
}

Result<std::vector<v1::FileInfo>> ListCatalog(const BrowseTarget& t, const std::string& path) {
  std::vector<v1::FileInfo> out;
  if (VolumeOf(path).empty()) {
    for (const auto& v : t.catalog->volumes) FromCatalog(v, t.catalog->disks, &out.emplace_back());
    return out;
  }
  OFFHOST_RETURN_IF_ERROR(CheckIndexed(t, path));
  OFFHOST_ASSIGN_OR_RETURN(auto entries, proxy::CatalogList(*t.reader, *t.catalog, path));
  for (const auto& e : entries) FromCatalog(e, &out.emplace_back());
  return out;
}

Result<v1::FileInfo> StatCatalog(const BrowseTarget& t, const std::string& path) {
  v1::FileInfo out;
  if (VolumeOf(path).empty()) return RootFolder();
  if (IsVolumePath(path)) {
    const storage::CatalogVolume* v = CatalogVolumeOf(t, path);
    if (!v) return Status::NotFound(path + ": no volume " + VolumeOf(path) + " in this backup");
    FromCatalog(*v, t.catalog->disks, &out);
    return out;
  }
  OFFHOST_RETURN_IF_ERROR(CheckIndexed(t, path));
  OFFHOST_ASSIGN_OR_RETURN(auto entry, proxy::CatalogLookup(*t.reader, *t.catalog, path));
  FromCatalog(entry, &out);
  return out;
}

// --- from the backup

Result<std::vector<v1::FileInfo>> ListBackup(const BrowseTarget& t, const std::string& path) {
  OFFHOST_ASSIGN_OR_RETURN(auto opened, proxy::SnapshotFiles::Open(*t.datastore, *t.snapshot));
  mount::GuestFiles& files = opened->files();
  std::vector<v1::FileInfo> out;
  if (VolumeOf(path).empty()) {
    for (const auto& v : files.volumes())
      FromBackup(v, DiskNames(*t.snapshot), &out.emplace_back());
    return out;
  }
  OFFHOST_ASSIGN_OR_RETURN(mount::FileInfo info, files.Stat(path));
  if (info.type != mount::FileType::kDirectory) {
    FromBackup(info, &out.emplace_back());
    return out;
  }
  OFFHOST_ASSIGN_OR_RETURN(auto entries, files.List(path));
  for (const auto& e : entries) FromBackup(e, &out.emplace_back());
  return out;
}

Result<v1::FileInfo> StatBackup(const BrowseTarget& t, const std::string& path) {
  if (VolumeOf(path).empty()) return RootFolder();
  OFFHOST_ASSIGN_OR_RETURN(auto opened, proxy::SnapshotFiles::Open(*t.datastore, *t.snapshot));
  mount::GuestFiles& files = opened->files();
  v1::FileInfo out;
  if (IsVolumePath(path)) {
    const auto& volumes = files.volumes();
    auto v = std::find_if(volumes.begin(), volumes.end(),
                          [&](const mount::VolumeInfo& vi) { return vi.name == VolumeOf(path); });
    if (v == volumes.end()) {
      return Status::NotFound(path + ": no volume " + VolumeOf(path) + " in this backup");
    }
    FromBackup(*v, DiskNames(*t.snapshot), &out);
    return out;
  }
  OFFHOST_ASSIGN_OR_RETURN(mount::FileInfo info, files.Stat(path));
  FromBackup(info, &out);
  return out;
}

}  // namespace

Result<std::vector<v1::FileInfo>> ListEntries(const BrowseTarget& target, const std::string& path) {
  return target.catalog ? ListCatalog(target, path) : ListBackup(target, path);
}

Result<v1::FileInfo> StatEntry(const BrowseTarget& target, const std::string& path) {
  return target.catalog ? StatCatalog(target, path) : StatBackup(target, path);
}

}  // namespace offhost::grpcapi
