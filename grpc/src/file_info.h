// Guest files as offhost.v1 shows them (common.proto FileInfo): from the catalog or from the
// backup itself, with the UTF-8 `name` / exact-bytes `raw_name` pairs guest names need.
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "offhost/mount/guest_files.h"
#include "offhost/storage/catalog.h"
#include "offhost/v1/common.pb.h"

namespace offhost::grpcapi {

// Whether `bytes` are valid UTF-8 (so a protobuf string field may hold them).
bool IsUtf8(const std::string& bytes);
// `bytes` with each byte that is not part of valid UTF-8 replaced by U+FFFD.
std::string DisplayUtf8(const std::string& bytes);

// Sets a `string x` / `bytes raw_x` pair: the display form always, the bytes when they differ.
template <typename Set, typename SetRaw>
void SetGuestString(const std::string& bytes, Set set, SetRaw set_raw) {
  if (IsUtf8(bytes)) {
    set(bytes);
  } else {
    set(DisplayUtf8(bytes));
    set_raw(bytes);
  }
}

void SetTime(int64_t unix_seconds, google::protobuf::Timestamp* out);

// `disks` are the snapshot's disk names: a volume's disk is known only when there is one.
void FromCatalog(const storage::CatalogEntry& e, v1::FileInfo* out);
void FromCatalog(const storage::CatalogVolume& v, const std::vector<std::string>& disks,
                 v1::FileInfo* out);
void FromBackup(const mount::FileInfo& f, v1::FileInfo* out);
void FromBackup(const mount::VolumeInfo& v, const std::vector<std::string>& disks,
                v1::FileInfo* out);

// The guest path a request names with its `path` / `raw_path` oneof; "/" when neither is set.
template <typename Request>
std::string GuestPath(const Request& r) {
  std::string path = r.has_raw_path() ? r.raw_path() : r.path();
  return path.empty() ? "/" : path;
}

}  // namespace offhost::grpcapi
