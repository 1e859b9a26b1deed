#include "file_info.h"

namespace offhost::grpcapi {
namespace {

// Length of the valid UTF-8 sequence at `s[i]`, or 0 (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF).
size_t Utf8SequenceLength(const std::string& s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n = c >= 0xC2 && c <= 0xDF   ? 2
             : c >= 0xE0 && c <= 0xEF ? 3
             : c >= 0xF0 && c <= 0xF4 ? 4
                                      : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  unsigned char c1 = byte(i + 1);
  if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
      (c == 0xF4 && c1 > 0x8F)) {
    return 0;
  }
  return n;
}

v1::FileType TypeOf(storage::CatalogFileType t) {
  switch (t) {
    case storage::CatalogFileType::kRegular:
      return v1::FILE_TYPE_REGULAR;
    case storage::CatalogFileType::kDirectory:
      return v1::FILE_TYPE_DIRECTORY;
    case storage::CatalogFileType::kSymlink:
      return v1::FILE_TYPE_SYMLINK;
    default:
      return v1::FILE_TYPE_OTHER;
  }
}

v1::FileType TypeOf(mount::FileType t) {
  switch (t) {
    case mount::FileType::kRegular:
      return v1::FILE_TYPE_REGULAR;
    case mount::FileType::kDirectory:
      return v1::FILE_TYPE_DIRECTORY;
    case mount::FileType::kSymlink:
      return v1::FILE_TYPE_SYMLINK;
    default:
      return v1::FILE_TYPE_OTHER;
  }
}

// The fields catalog entries and files read from the backup share.
template <typename Entry>
void SetCommon(const Entry& e, v1::FileType type, v1::FileInfo* out) {
  SetGuestString(
      e.name, [&](const std::string& s) { out->set_name(s); },
      [&](const std::string& s) { out->set_raw_name(s); });
  out->set_type(type);
  out->set_size_bytes(e.size);
  out->set_mode(e.mode & 07777);
  out->set_uid(e.uid);
  out->set_gid(e.gid);
  SetTime(e.mtime, out->mutable_modify_time());
  SetTime(e.atime, out->mutable_access_time());
  SetTime(e.ctime, out->mutable_change_time());
  if (!e.link_target.empty()) {
    SetGuestString(
        e.link_target, [&](const std::string& s) { out->set_link_target(s); },
        [&](const std::string& s) { out->set_raw_link_target(s); });
  }
}

// Volumes are named by offhost ("vda1", "rhel-root"), hence always UTF-8.
void SetVolume(const std::string& name, uint64_t offset, uint64_t length,
               const std::string& fs_type, const std::string& not_indexed,
               const std::vector<std::string>& disks, v1::FileInfo* out) {
  out->set_name(name);
  out->set_type(v1::FILE_TYPE_VOLUME);
  out->set_size_bytes(length);
  out->set_mode(0755);
  auto* v = out->mutable_volume();
  if (disks.size() == 1) v->set_disk(disks[0]);
  v->set_offset_bytes(offset);
  v->set_length_bytes(length);
  v->set_fs_type(fs_type);
  v->set_not_indexed_reason(not_indexed);
}

}  // namespace

bool IsUtf8(const std::string& bytes) {
  for (size_t i = 0; i < bytes.size();) {
    size_t n = Utf8SequenceLength(bytes, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string DisplayUtf8(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    size_t n = Utf8SequenceLength(bytes, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    } else {
      out.append(bytes, i, n);
      i += n;
    }
  }
  return out;
}

void SetTime(int64_t unix_seconds, google::protobuf::Timestamp* out) {
  out->set_seconds(unix_seconds);
}

void FromCatalog(const storage::CatalogEntry& e, v1::FileInfo* out) {
  SetCommon(e, TypeOf(e.type), out);
}

void FromCatalog(const storage::CatalogVolume& v, const std::vector<std::string>& disks,
                 v1::FileInfo* out) {
  SetVolume(v.name, v.offset, v.length, v.fs_type, v.not_indexed, disks, out);
  out->mutable_volume()->set_file_count(v.files);
  out->mutable_volume()->set_directory_count(v.directories);
  out->mutable_volume()->set_file_bytes(v.bytes);
  out->mutable_volume()->set_unreadable_directory_count(v.unreadable);
}

void FromBackup(const mount::FileInfo& f, v1::FileInfo* out) { SetCommon(f, TypeOf(f.type), out); }

void FromBackup(const mount::VolumeInfo& v, const std::vector<std::string>& disks,
                v1::FileInfo* out) {
  SetVolume(v.name, v.offset, v.length, v.fs_type, v.not_indexed, disks, out);
}

}  // namespace offhost::grpcapi
