#include "tar_stream.h"

#include <algorithm>
#include <cstring>

namespace offhost::grpcapi {
namespace {

constexpr uint64_t kBlock = 512;
// ustar's numeric fields hold octal digits of this many bytes, the last a NUL.
constexpr uint64_t kMaxSize = 077777777777ULL;  // 12 bytes: 8 GiB - 1
constexpr uint64_t kMaxId = 07777777;           // 8 bytes
const std::string kZeroes(kBlock * 2, '\0');

uint64_t Padded(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

void Octal(char* field, size_t width, uint64_t value) {
  std::string digits(width - 1, '0');
  for (size_t i = width - 1; i-- > 0 && value != 0; value >>= 3)
    digits[i] = char('0' + (value & 7));
  std::memcpy(field, digits.data(), width - 1);
}

bool FitsUstar(const std::string& text) {
  return text.size() <= 100 &&
         std::none_of(text.begin(), text.end(), [](char c) { return (c & 0x80) != 0; });
}

// "LEN key=value\n", LEN counting its own digits.
std::string PaxRecord(const std::string& key, const std::string& value) {
  size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t length = body + 1;
  while (std::to_string(length).size() + body != length)
    length = std::to_string(length).size() + body;
  return std::to_string(length) + " " + key + "=" + value + "\n";
}

// One 512-byte ustar header; names longer than 100 bytes are cut (a pax record holds them).
std::string UstarHeader(const std::string& name, char type, uint32_t mode, uint64_t uid,
                        uint64_t gid, uint64_t size, int64_t mtime, const std::string& link) {
  std::string h(kBlock, '\0');
  std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
  Octal(&h[100], 8, mode & 07777);
  Octal(&h[108], 8, std::min(uid, kMaxId));
  Octal(&h[116], 8, std::min(gid, kMaxId));
  Octal(&h[124], 12, std::min(size, kMaxSize));
  Octal(&h[136], 12, static_cast<uint64_t>(std::max<int64_t>(mtime, 0)));
  h[156] = type;
  std::memcpy(&h[157], link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(&h[257],
              "ustar\0"
              "00",
              8);
  // The checksum is summed with its own field as spaces.
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  Octal(&h[148], 7, sum);
  return h;
}

// The pax records an entry needs: what ustar cannot hold.
std::string PaxRecords(const std::string& name, const mount::FileInfo& info, uint64_t size) {
  std::string records;
  if (!FitsUstar(name)) records += PaxRecord("path", name);
  if (!FitsUstar(info.link_target)) records += PaxRecord("linkpath", info.link_target);
  if (size > kMaxSize) records += PaxRecord("size", std::to_string(size));
  if (info.uid > kMaxId) records += PaxRecord("uid", std::to_string(info.uid));
  if (info.gid > kMaxId) records += PaxRecord("gid", std::to_string(info.gid));
  return records;
}

// A name the archive may hold: one path component that is not "." or "..".
bool SafeName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string("/\0", 2)) == std::string::npos;
}

std::string BaseName(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  return trimmed.substr(trimmed.rfind('/') + 1);
}

}  // namespace

Result<TarArchive> TarArchive::Plan(mount::GuestFiles& files, const std::string& path) {
  std::string base = BaseName(path);
  if (!SafeName(base)) {
    return Status::InvalidArgument(
        "give a volume, or a file or folder inside one, to download "
        "as tar (e.g. /vda1/etc), not \"" +
        path + "\"");
  }
  OFFHOST_ASSIGN_OR_RETURN(mount::FileInfo info, files.Stat(path));
  TarArchive archive;
  OFFHOST_RETURN_IF_ERROR(archive.Walk(files, base, info, path));
  archive.size_ += kZeroes.size();  // the end-of-archive marker
  return archive;
}

Status TarArchive::Walk(mount::GuestFiles& files, const std::string& name,
                        const mount::FileInfo& info, const std::string& guest_path) {
  if (info.type == mount::FileType::kOther) {
    skipped_.push_back(guest_path + ": not a file, folder or symlink (device, FIFO or socket)");
    return Status::OK();
  }
  Add(name, info, guest_path);
  if (info.type != mount::FileType::kDirectory) return Status::OK();
  OFFHOST_ASSIGN_OR_RETURN(std::vector<mount::FileInfo> children, files.List(guest_path));
  std::sort(children.begin(), children.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const mount::FileInfo& child : children) {
    std::string child_path = guest_path + "/" + child.name;
    if (!SafeName(child.name)) {
      skipped_.push_back(child_path + ": unsafe name");
      continue;
    }
    OFFHOST_RETURN_IF_ERROR(Walk(files, name + "/" + child.name, child, child_path));
  }
  return Status::OK();
}

void TarArchive::Add(const std::string& name, const mount::FileInfo& file,
                     const std::string& guest_path) {
  mount::FileInfo info = file;
  bool regular = info.type == mount::FileType::kRegular;
  char type = regular ? '0' : info.type == mount::FileType::kSymlink ? '2' : '5';
  // A further name of a file already in the archive is a hard link to its first name.
  if (regular && info.links > 1 && info.inode != 0) {
    auto [first, inserted] = first_name_.emplace(info.inode, name);
    if (!inserted) {
      regular = false;
      type = '1';
      info.link_target = first->second;
    }
  }
  std::string entry = info.type == mount::FileType::kDirectory ? name + "/" : name;
  uint64_t size = regular ? info.size : 0;
  Piece piece{.offset = size_, .guest_path = regular ? guest_path : "", .content = size};
  std::string records = PaxRecords(entry, info, size);
  if (!records.empty()) {
    // A fixed name and time: the archive must be the same bytes on every call.
    piece.headers = UstarHeader("././@PaxHeader", 'x', 0644, 0, 0, records.size(), 0, "");
    piece.headers += records + std::string(Padded(records.size()) - records.size(), '\0');
  }
  piece.headers +=
      UstarHeader(entry, type, info.mode, info.uid, info.gid, size, info.mtime, info.link_target);
  size_ += piece.headers.size() + Padded(size);
  pieces_.push_back(std::move(piece));
}

Status TarArchive::Send(mount::GuestFiles& files, uint64_t begin, const TarSink& sink) const {
  for (const Piece& piece : pieces_) {
    uint64_t content_offset = piece.offset + piece.headers.size();
    uint64_t end = content_offset + Padded(piece.content);
    if (end <= begin) continue;
    OFFHOST_RETURN_IF_ERROR(sink(piece.offset, piece.headers));
    if (!piece.guest_path.empty())
      OFFHOST_RETURN_IF_ERROR(SendFile(files, piece, content_offset, sink));
  }
  return sink(size_ - kZeroes.size(), kZeroes);
}

Status TarArchive::SendFile(mount::GuestFiles& files, const Piece& piece, uint64_t content_offset,
                            const TarSink& sink) {
  uint64_t delivered = 0;
  OFFHOST_RETURN_IF_ERROR(
      files.ReadFile(piece.guest_path, [&](uint64_t offset, std::span<const char> data) {
        if (offset != delivered || offset + data.size() > piece.content) {
          return Status::Corruption(piece.guest_path + " read back out of order or too long");
        }
        delivered += data.size();
        return sink(content_offset + offset, data);
      }));
  // The header promised `content` bytes: fewer would shift every later offset.
  if (delivered != piece.content) {
    return Status::Corruption(piece.guest_path + " gave " + std::to_string(delivered) +
                              " bytes of the " + std::to_string(piece.content) + " its size says");
  }
  uint64_t padding = Padded(piece.content) - piece.content;
  return sink(content_offset + piece.content, std::span<const char>(kZeroes.data(), padding));
}

}  // namespace offhost::grpcapi
