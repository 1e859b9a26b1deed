#include "lvm_metadata.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <variant>

namespace offhost::mount::internal {
namespace {

uint64_t Le(const char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = n; i-- > 0;) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

constexpr size_t kSector = 512;
constexpr char kMdaMagic[] = " LVM2 x[5A%r0N*>";  // 16 bytes
constexpr uint64_t kMaxMetadataText = 64u << 20;  // far above what LVM writes (about 1 MiB)

// --- the text format -------------------------------------------------------------------

struct Value {
  std::variant<int64_t, std::string, std::vector<Value>> v;
};

struct Section {
  std::string name;
  std::vector<std::pair<std::string, Value>> values;
  std::vector<Section> sections;  // a vector of the incomplete type itself is fine since C++17

  const Value* Find(const std::string& key) const;
  const Section* Child(const std::string& key) const;
};

const Value* Section::Find(const std::string& key) const {
  for (const auto& kv : values) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}
const Section* Section::Child(const std::string& key) const {
  for (const auto& child : sections) {
    if (child.name == key) return &child;
  }
  return nullptr;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : t_(text) {}

  Result<Section> ParseFile() {
    Section top;
    OFFHOST_RETURN_IF_ERROR(ParseItems(&top, 0));
    if (pos_ < t_.size()) return Error("unexpected '}'");
    return top;
  }

 private:
  Status Error(const std::string& what) const {
    size_t line = 1 + static_cast<size_t>(std::count(t_.begin(), t_.begin() + pos_, '\n'));
    return Status::Corruption("LVM metadata line " + std::to_string(line) + ": " + what);
  }

  void Skip() {
    while (pos_ < t_.size()) {
      char c = t_[pos_];
      if (c == '#') {
        while (pos_ < t_.size() && t_[pos_] != '\n') ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\0') {
        ++pos_;
      } else {
        break;
      }
    }
  }

  static bool IdentChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '+' ||
           c == '-';
  }

  Status ParseItems(Section* s, int depth) {
    if (depth > 16) return Error("sections nested too deeply");
    for (;;) {
      Skip();
      if (pos_ >= t_.size() || t_[pos_] == '}') return Status::OK();
      size_t start = pos_;
      while (pos_ < t_.size() && IdentChar(t_[pos_])) ++pos_;
      if (pos_ == start) return Error(std::string("unexpected '") + t_[pos_] + "'");
      std::string key(t_.substr(start, pos_ - start));
      Skip();
      if (pos_ < t_.size() && t_[pos_] == '{') {
        ++pos_;
        Section child;
        child.name = key;
        OFFHOST_RETURN_IF_ERROR(ParseItems(&child, depth + 1));
        if (pos_ >= t_.size()) return Error("section '" + key + "' is not closed");
        ++pos_;  // '}'
        s->sections.push_back(std::move(child));
      } else if (pos_ < t_.size() && t_[pos_] == '=') {
        ++pos_;
        Value v;
        OFFHOST_RETURN_IF_ERROR(ParseValue(&v, true));
        s->values.emplace_back(std::move(key), std::move(v));
      } else {
        return Error("expected '=' or '{' after '" + key + "'");
      }
    }
  }

  Status ParseValue(Value* out, bool allow_list) {
    Skip();
    if (pos_ >= t_.size()) return Error("value missing at the end");
    char c = t_[pos_];
    if (c == '"') {
      std::string s;
      for (++pos_; pos_ < t_.size() && t_[pos_] != '"'; ++pos_) {
        if (t_[pos_] == '\\' && pos_ + 1 < t_.size()) ++pos_;
        s += t_[pos_];
      }
      if (pos_ >= t_.size()) return Error("string is not closed");
      ++pos_;
      out->v = std::move(s);
      return Status::OK();
    }
    if (c == '[' && allow_list) {
      ++pos_;
      std::vector<Value> list;
      for (;;) {
        Skip();
        if (pos_ < t_.size() && t_[pos_] == ']') break;
        if (!list.empty()) {
          if (pos_ >= t_.size() || t_[pos_] != ',') return Error("expected ',' or ']' in a list");
          ++pos_;
        }
        Value item;
        OFFHOST_RETURN_IF_ERROR(ParseValue(&item, false));
        list.push_back(std::move(item));
      }
      ++pos_;
      out->v = std::move(list);
      return Status::OK();
    }
    size_t start = pos_;
    if (c == '-') ++pos_;
    while (pos_ < t_.size() && (std::isdigit(static_cast<unsigned char>(t_[pos_])) || t_[pos_] == '.')) {
      ++pos_;
    }
    if (pos_ == start || (c == '-' && pos_ == start + 1)) {
      return Error(std::string("unexpected '") + c + "' where a value should be");
    }
    // Floats exist in the format but not in the fields read here: keep their integer part.
    std::string num(t_.substr(start, pos_ - start));
    errno = 0;
    long long v = std::strtoll(num.c_str(), nullptr, 10);
    if (errno) return Error("number '" + num + "' out of range");
    out->v = static_cast<int64_t>(v);
    return Status::OK();
  }

  std::string_view t_;
  size_t pos_ = 0;
};

Result<uint64_t> Number(const Section& s, const std::string& key, const std::string& where) {
  const Value* v = s.Find(key);
  if (!v || !std::holds_alternative<int64_t>(v->v) || std::get<int64_t>(v->v) < 0) {
    return Status::Corruption("LVM metadata: " + where + " has no valid '" + key + "'");
  }
  return static_cast<uint64_t>(std::get<int64_t>(v->v));
}

std::string Text(const Section& s, const std::string& key) {
  const Value* v = s.Find(key);
  return v && std::holds_alternative<std::string>(v->v) ? std::get<std::string>(v->v) : "";
}

std::string Undash(const std::string& uuid) {
  std::string out;
  for (char c : uuid) {
    if (c != '-') out += c;
  }
  return out;
}

Result<LvmSegment> ParseSegment(const Section& s, const std::string& where) {
  LvmSegment seg;
  OFFHOST_ASSIGN_OR_RETURN(seg.start_extent, Number(s, "start_extent", where));
  OFFHOST_ASSIGN_OR_RETURN(seg.extent_count, Number(s, "extent_count", where));
  seg.type = Text(s, "type");
  if (const Value* n = s.Find("stripe_count"); n && std::holds_alternative<int64_t>(n->v)) {
    seg.stripe_count = static_cast<uint64_t>(std::max<int64_t>(0, std::get<int64_t>(n->v)));
  }
  if (const Value* st = s.Find("stripes"); st && std::holds_alternative<std::vector<Value>>(st->v)) {
    const auto& list = std::get<std::vector<Value>>(st->v);
    for (size_t i = 0; i + 1 < list.size(); i += 2) {
      if (!std::holds_alternative<std::string>(list[i].v) ||
          !std::holds_alternative<int64_t>(list[i + 1].v) || std::get<int64_t>(list[i + 1].v) < 0) {
        return Status::Corruption("LVM metadata: " + where + " has a malformed stripes list");
      }
      seg.stripes.emplace_back(std::get<std::string>(list[i].v),
                               static_cast<uint64_t>(std::get<int64_t>(list[i + 1].v)));
    }
  }
  return seg;
}

}  // namespace

bool LvmLogicalVolume::visible() const {
  return std::find(status.begin(), status.end(), "VISIBLE") != status.end();
}

Result<LvmLabel> ReadLvmLabel(BlockDevice& pv) {
  if (pv.size() < 4 * kSector) return Status::NotFound("too small for an LVM2 label");
  std::string head(4 * kSector, '\0');
  ReadRequest req{0, {head.data(), head.size()}};
  OFFHOST_RETURN_IF_ERROR(pv.Read({&req, 1}));
  for (size_t sector = 0; sector < 4; ++sector) {
    const char* l = head.data() + sector * kSector;
    if (std::memcmp(l, "LABELONE", 8) != 0 || std::memcmp(l + 24, "LVM2 001", 8) != 0) continue;
    uint64_t off = Le(l + 20, 4);
    // The PV header is 32 + 8 bytes, then at least two zero-terminated area lists.
    if (off < 32 || off + 40 + 32 > kSector) {
      return Status::Corruption("LVM2 label: PV header offset " + std::to_string(off));
    }
    LvmLabel label;
    const char* h = l + off;
    label.pv_uuid.assign(h, 32);
    label.device_size = Le(h + 32, 8);
    const char* p = h + 40;
    const char* end = l + kSector;
    bool data_done = false, first_data = true;
    for (; p + 16 <= end; p += 16) {
      uint64_t a = Le(p, 8), n = Le(p + 8, 8);
      if (a == 0 && n == 0) {
        if (data_done) break;
        data_done = true;
        continue;
      }
      if (!data_done) {
        if (first_data) label.pe_start = a;
        first_data = false;
      } else {
        label.metadata_areas.emplace_back(a, n);
      }
    }
    return label;
  }
  return Status::NotFound("no LVM2 label");
}

Result<std::string> ReadLvmMetadataText(BlockDevice& pv, const LvmLabel& label) {
  Status last = Status::NotFound("the PV holds no copy of its volume group's metadata");
  for (const auto& [start, size] : label.metadata_areas) {
    std::string where = "LVM metadata area at byte " + std::to_string(start);
    if (size <= kSector || start > pv.size() || size > pv.size() - start) {
      last = Status::Corruption(where + ": size " + std::to_string(size) + " does not fit the PV");
      continue;
    }
    std::string hdr(kSector, '\0');
    ReadRequest req{start, {hdr.data(), hdr.size()}};
    OFFHOST_RETURN_IF_ERROR(pv.Read({&req, 1}));
    if (std::memcmp(hdr.data() + 4, kMdaMagic, 16) != 0) {
      last = Status::Corruption(where + ": no metadata header magic");
      continue;
    }
    uint64_t off = Le(hdr.data() + 40, 8), len = Le(hdr.data() + 48, 8);
    uint32_t flags = static_cast<uint32_t>(Le(hdr.data() + 60, 4));
    // Empty (a PV in no volume group yet) or ignored (pvchange --metadataignore) areas.
    if (off == 0 || len == 0 || (flags & 1)) continue;
    if (off < kSector || off >= size || len > kMaxMetadataText || len > size - kSector) {
      last = Status::Corruption(where + ": metadata text at " + std::to_string(off) + "+" +
                                std::to_string(len) + " does not fit the area");
      continue;
    }
    // The text is a ring inside the area after its 512-byte header.
    std::string text(len, '\0');
    uint64_t first = std::min(len, size - off);
    ReadRequest parts[2] = {{start + off, {text.data(), first}},
                            {start + kSector, {text.data() + first, len - first}}};
    OFFHOST_RETURN_IF_ERROR(pv.Read({parts, len > first ? 2u : 1u}));
    return text;
  }
  return last;
}

Result<LvmVolumeGroup> ParseLvmMetadata(std::string_view text) {
  OFFHOST_ASSIGN_OR_RETURN(Section top, Parser(text).ParseFile());
  const Section* vgs = nullptr;
  LvmVolumeGroup vg;
  for (const auto& s : top.sections) {
    if (s.Child("physical_volumes")) {
      vg.name = s.name;
      vgs = &s;
      break;
    }
  }
  if (!vgs) return Status::Corruption("LVM metadata names no volume group");
  std::string where = "volume group '" + vg.name + "'";
  vg.id = Text(*vgs, "id");
  OFFHOST_ASSIGN_OR_RETURN(vg.seqno, Number(*vgs, "seqno", where));
  OFFHOST_ASSIGN_OR_RETURN(uint64_t extent_sectors, Number(*vgs, "extent_size", where));
  if (extent_sectors == 0 || extent_sectors > (1ull << 40)) {
    return Status::Corruption("LVM metadata: " + where + " has extent size " +
                              std::to_string(extent_sectors) + " sectors");
  }
  vg.extent_size = extent_sectors * kSector;
  for (const auto& s : vgs->Child("physical_volumes")->sections) {
    LvmPhysicalVolume pv;
    pv.name = s.name;
    pv.uuid = Undash(Text(s, "id"));
    std::string pv_where = where + " PV " + s.name;
    OFFHOST_ASSIGN_OR_RETURN(uint64_t pe_start, Number(s, "pe_start", pv_where));
    OFFHOST_ASSIGN_OR_RETURN(pv.pe_count, Number(s, "pe_count", pv_where));
    if (pe_start > (1ull << 50)) {
      return Status::Corruption("LVM metadata: " + pv_where + " has pe_start " + std::to_string(pe_start));
    }
    pv.pe_start = pe_start * kSector;
    vg.pvs.push_back(std::move(pv));
  }
  if (const Section* lvs = vgs->Child("logical_volumes")) {
    for (const auto& s : lvs->sections) {
      LvmLogicalVolume lv;
      lv.name = s.name;
      if (const Value* st = s.Find("status"); st && std::holds_alternative<std::vector<Value>>(st->v)) {
        for (const auto& f : std::get<std::vector<Value>>(st->v)) {
          if (std::holds_alternative<std::string>(f.v)) lv.status.push_back(std::get<std::string>(f.v));
        }
      }
      // Segments are sections named segment1, segment2...; keep them in extent order.
      for (const auto& seg : s.sections) {
        if (!seg.name.starts_with("segment")) continue;
        OFFHOST_ASSIGN_OR_RETURN(LvmSegment parsed,
                                 ParseSegment(seg, where + " LV " + s.name + " " + seg.name));
        lv.segments.push_back(std::move(parsed));
      }
      std::sort(lv.segments.begin(), lv.segments.end(),
                [](const LvmSegment& a, const LvmSegment& b) { return a.start_extent < b.start_extent; });
      vg.lvs.push_back(std::move(lv));
    }
  }
  return vg;
}

Result<std::vector<LvmPiece>> LvmLayout(const LvmVolumeGroup& vg, const LvmLogicalVolume& lv) {
  std::vector<LvmPiece> out;
  uint64_t next_extent = 0;
  if (lv.segments.empty()) return Status::Corruption("it has no segments");
  for (size_t i = 0; i < lv.segments.size(); ++i) {
    const LvmSegment& seg = lv.segments[i];
    std::string which = "segment " + std::to_string(i + 1);
    if (seg.type != "striped" && seg.type != "linear") {
      return Status::NotSupported(which + " is of type '" + seg.type +
                                  "' (thin, RAID, mirror, snapshot, cache and VDO volumes are not "
                                  "read; linear ones are)");
    }
    if (seg.stripe_count != 1 || seg.stripes.size() != 1) {
      return Status::NotSupported(which + " is striped over " +
                                  std::to_string(std::max<size_t>(seg.stripes.size(), seg.stripe_count)) +
                                  " areas (only linear volumes, one stripe per segment, are read)");
    }
    if (seg.start_extent != next_extent || seg.extent_count == 0) {
      return Status::Corruption(which + " covers extents " + std::to_string(seg.start_extent) +
                                "+" + std::to_string(seg.extent_count) + ", expected to start at " +
                                std::to_string(next_extent));
    }
    const std::string& pv_name = seg.stripes[0].first;
    uint64_t first_pe = seg.stripes[0].second;
    auto pv = std::find_if(vg.pvs.begin(), vg.pvs.end(),
                           [&](const LvmPhysicalVolume& p) { return p.name == pv_name; });
    if (pv == vg.pvs.end()) {
      return Status::Corruption(which + " lies on '" + pv_name + "', which the group does not list");
    }
    uint64_t product;
    if (first_pe > pv->pe_count || seg.extent_count > pv->pe_count - first_pe ||
        __builtin_mul_overflow(pv->pe_count, vg.extent_size, &product) ||
        __builtin_mul_overflow(next_extent + seg.extent_count, vg.extent_size, &product)) {
      return Status::Corruption(which + " uses extents " + std::to_string(first_pe) + "+" +
                                std::to_string(seg.extent_count) + " of " + pv_name + ", which has " +
                                std::to_string(pv->pe_count));
    }
    out.push_back({seg.start_extent * vg.extent_size, seg.extent_count * vg.extent_size, pv->uuid,
                   pv->pe_start + first_pe * vg.extent_size});
    next_extent = seg.start_extent + seg.extent_count;
  }
  return out;
}

std::string DeviceMapperName(const std::string& vg, const std::string& lv) {
  auto escape = [](const std::string& s) {
    std::string out;
    for (char c : s) out += c == '-' ? std::string("--") : std::string(1, c);
    return out;
  };
  return escape(vg) + "-" + escape(lv);
}

}  // namespace offhost::mount::internal
