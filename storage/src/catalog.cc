// Catalog tree codec; layout in docs/catalog-format.md. Integers are LEB128 varints (signed
// ones zigzag-coded): modes, ids, times and extents are mostly small or close to each other,
// and the catalog is the part of the index that grows with the number of files.
#include "offhost/storage/catalog.h"

#include <algorithm>
#include <cstring>

namespace offhost::storage {
namespace {

constexpr uint8_t kTreeVersion = 1;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

uint64_t Zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t Unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

void PutBytes(std::string* out, const std::string& s) {
  PutVarint(out, s.size());
  out->append(s);
}

// Bounds-checked reading; the first error sticks and is reported once.
class Reader {
 public:
  explicit Reader(std::span<const char> b) : b_(b) {}
  bool ok() const { return ok_; }
  bool done() const { return pos_ == b_.size(); }
  size_t pos() const { return pos_; }

  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!Need(1)) return 0;
      auto byte = static_cast<uint8_t>(b_[pos_++]);
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    ok_ = false;
    return 0;
  }
  uint8_t Byte() { return Need(1) ? static_cast<uint8_t>(b_[pos_++]) : 0; }
  std::string Bytes(size_t max) {
    uint64_t n = Varint();
    if (n > max || !Need(n)) {
      ok_ = false;
      return {};
    }
    std::string s(b_.data() + pos_, n);
    pos_ += n;
    return s;
  }
  void Raw(void* dst, size_t n) {
    if (!Need(n)) return;
    std::memcpy(dst, b_.data() + pos_, n);
    pos_ += n;
  }

 private:
  bool Need(uint64_t n) {
    if (!ok_ || b_.size() - pos_ < n) ok_ = false;
    return ok_;
  }
  std::span<const char> b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

constexpr size_t kMaxName = 4096, kMaxLink = 65536;

}  // namespace

bool IsCatalogName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= kMaxName &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

namespace {

}  // namespace

std::string EncodeTree(std::vector<CatalogEntry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const CatalogEntry& a, const CatalogEntry& b) { return a.name < b.name; });
  std::string out;
  out.push_back(static_cast<char>(kTreeVersion));
  PutVarint(&out, entries.size());
  for (const CatalogEntry& e : entries) {
    PutBytes(&out, e.name);
    out.push_back(static_cast<char>(e.type));
    PutVarint(&out, e.mode);
    PutVarint(&out, e.uid);
    PutVarint(&out, e.gid);
    PutVarint(&out, e.size);
    PutVarint(&out, Zigzag(e.mtime));
    PutVarint(&out, Zigzag(e.atime - e.mtime));  // atime and ctime sit close to mtime
    PutVarint(&out, Zigzag(e.ctime - e.mtime));
    PutBytes(&out, e.link_target);
    out.push_back(e.tree ? 1 : 0);
    if (e.tree) out.append(reinterpret_cast<const char*>(e.tree->bytes.data()), 32);
    PutVarint(&out, e.extents.size());
    uint64_t next_file = 0;
    for (const CatalogExtent& x : e.extents) {
      PutVarint(&out, x.disk);
      PutVarint(&out, Zigzag(static_cast<int64_t>(x.file_offset - next_file)));
      PutVarint(&out, x.disk_offset);
      PutVarint(&out, x.length);
      next_file = x.file_offset + x.length;
    }
  }
  return out;
}

Result<std::vector<CatalogEntry>> DecodeTree(std::span<const char> bytes) {
  Reader r(bytes);
  uint8_t version = r.Byte();
  if (r.ok() && version != kTreeVersion) {
    return Status::Corruption("catalog tree has version " + std::to_string(version) +
                              ", this offhost reads version 1; upgrade offhost");
  }
  uint64_t count = r.Varint();
  if (count > bytes.size()) return Status::Corruption("catalog tree entry count is implausible");
  std::vector<CatalogEntry> out;
  out.reserve(count);
  for (uint64_t i = 0; i < count && r.ok(); ++i) {
    CatalogEntry e;
    e.name = r.Bytes(kMaxName);
    uint8_t type = r.Byte();
    if (type > static_cast<uint8_t>(CatalogFileType::kOther)) break;
    e.type = static_cast<CatalogFileType>(type);
    e.mode = static_cast<uint32_t>(r.Varint());
    e.uid = static_cast<uint32_t>(r.Varint());
    e.gid = static_cast<uint32_t>(r.Varint());
    e.size = r.Varint();
    e.mtime = Unzigzag(r.Varint());
    e.atime = e.mtime + Unzigzag(r.Varint());
    e.ctime = e.mtime + Unzigzag(r.Varint());
    e.link_target = r.Bytes(kMaxLink);
    if (r.Byte()) {
      TreeId id;
      r.Raw(id.bytes.data(), 32);
      e.tree = id;
    }
    uint64_t extents = r.Varint();
    if (extents > bytes.size()) break;
    uint64_t next_file = 0;
    for (uint64_t k = 0; k < extents && r.ok(); ++k) {
      CatalogExtent x;
      x.disk = static_cast<uint32_t>(r.Varint());
      x.file_offset = next_file + static_cast<uint64_t>(Unzigzag(r.Varint()));
      x.disk_offset = r.Varint();
      x.length = r.Varint();
      next_file = x.file_offset + x.length;
      e.extents.push_back(x);
    }
    if (!IsCatalogName(e.name)) break;
    if (!out.empty() && out.back().name >= e.name) break;
    out.push_back(std::move(e));
  }
  if (!r.ok() || out.size() != count || !r.done()) {
    return Status::Corruption("catalog tree is malformed near byte " + std::to_string(r.pos()));
  }
  return out;
}

}  // namespace offhost::storage
