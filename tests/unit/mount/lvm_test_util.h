// Writes LVM2 physical volumes in memory, the way pvcreate + vgcfgrestore lay them out (label
// in sector 1, one metadata area at 4 KiB, extents from pe_start), so unit tests need neither
// loop devices nor root. The layout is the one lvm_metadata.h documents.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace offhost::mount::testing {

inline void PutLe(std::string* s, size_t off, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) (*s)[off + i] = static_cast<char>(v >> (8 * i));
}

struct PvSpec {
  std::string uuid = "wQ6KFfULRMEymNXc3QwOuIXOQ5alk4hh";  // 32 characters
  uint64_t size = 64 << 20;
  uint64_t pe_start = 1 << 20;
  uint64_t mda_offset = 4096, mda_size = (1 << 20) - 4096;
  std::string text;       // metadata text
  uint64_t text_at = 512;  // offset of the text inside the area (>= 512); wraps at the end
};

// The first pe_start bytes of the PV: label, PV header and metadata area.
inline std::string PvHeader(const PvSpec& pv) {
  std::string s(pv.pe_start, '\0');
  size_t l = 512;  // label in sector 1, as pvcreate writes it
  std::memcpy(&s[l], "LABELONE", 8);
  PutLe(&s, l + 8, 1, 8);
  PutLe(&s, l + 20, 32, 4);
  std::memcpy(&s[l + 24], "LVM2 001", 8);
  size_t h = l + 32;
  std::memcpy(&s[h], pv.uuid.data(), 32);
  PutLe(&s, h + 32, pv.size, 8);
  PutLe(&s, h + 40, pv.pe_start, 8);  // data area; size 0 = to the end
  // h + 56: zero pair ends the data areas
  PutLe(&s, h + 72, pv.mda_offset, 8);
  PutLe(&s, h + 80, pv.mda_size, 8);
  // h + 88: zero pair ends the metadata areas
  size_t m = pv.mda_offset;
  std::memcpy(&s[m + 4], " LVM2 x[5A%r0N*>", 16);
  PutLe(&s, m + 20, 1, 4);
  PutLe(&s, m + 24, pv.mda_offset, 8);
  PutLe(&s, m + 32, pv.mda_size, 8);
  PutLe(&s, m + 40, pv.text_at, 8);
  PutLe(&s, m + 48, pv.text.size(), 8);
  for (size_t i = 0; i < pv.text.size(); ++i) {
    uint64_t at = pv.text_at + i;
    if (at >= pv.mda_size) at = 512 + (at - pv.mda_size);  // the ring wraps after the header
    s[m + at] = pv.text[i];
  }
  return s;
}

struct SegSpec {
  uint64_t start_extent, extent_count;
  std::string pv;  // "pv0"
  uint64_t pe;
  std::string type = "striped";
  int stripes = 1;
};

struct LvSpec {
  std::string name;
  std::vector<SegSpec> segments;
  bool visible = true;
};

// Metadata text like vgcfgbackup writes it (extent size in 512-byte sectors).
inline std::string VgText(const std::string& vg, uint64_t extent_size,
                          const std::vector<std::pair<std::string, PvSpec>>& pvs,
                          const std::vector<LvSpec>& lvs, int seqno = 3) {
  std::string t = vg + " {\n\tid = \"NewJzS-Z97q-emfl-eGf3-YLNh-wHvb-3KMES6\"\n\tseqno = " +
                  std::to_string(seqno) +
                  "\n\tformat = \"lvm2\"\t\t\t# informational\n\tstatus = [\"RESIZEABLE\", \"READ\", "
                  "\"WRITE\"]\n\tflags = []\n\textent_size = " +
                  std::to_string(extent_size / 512) + "\t\t# 4 Megabytes\n\tmax_lv = 0\n\tmax_pv = 0\n"
                  "\tmetadata_copies = 0\n\n\tphysical_volumes {\n\n";
  for (const auto& [name, pv] : pvs) {
    std::string u = pv.uuid;
    std::string dashed = u.substr(0, 6) + "-" + u.substr(6, 4) + "-" + u.substr(10, 4) + "-" +
                         u.substr(14, 4) + "-" + u.substr(18, 4) + "-" + u.substr(22, 4) + "-" +
                         u.substr(26, 6);
    t += "\t\t" + name + " {\n\t\t\tid = \"" + dashed + "\"\n\t\t\tdevice = \"/dev/vda\"\t# Hint only\n\n"
         "\t\t\tstatus = [\"ALLOCATABLE\"]\n\t\t\tflags = []\n\t\t\tdev_size = " +
         std::to_string(pv.size / 512) + "\n\t\t\tpe_start = " + std::to_string(pv.pe_start / 512) +
         "\n\t\t\tpe_count = " + std::to_string((pv.size - pv.pe_start) / extent_size) + "\n\t\t}\n";
  }
  t += "\t}\n\n\tlogical_volumes {\n\n";
  for (const auto& lv : lvs) {
    t += "\t\t" + lv.name + " {\n\t\t\tid = \"abcdef-ghij-klmn-opqr-stuv-wxyz-012345\"\n\t\t\tstatus = [\"READ\", \"WRITE\"" +
         std::string(lv.visible ? ", \"VISIBLE\"" : "") + "]\n\t\t\tflags = []\n\t\t\tsegment_count = " +
         std::to_string(lv.segments.size()) + "\n\n";
    int i = 0;
    for (const auto& s : lv.segments) {
      t += "\t\t\tsegment" + std::to_string(++i) + " {\n\t\t\t\tstart_extent = " +
           std::to_string(s.start_extent) + "\n\t\t\t\textent_count = " + std::to_string(s.extent_count) +
           "\t# 8 Megabytes\n\n\t\t\t\ttype = \"" + s.type + "\"\n";
      if (s.type == "thin") {
        t += "\t\t\t\tthin_pool = \"pool\"\n\t\t\t\ttransaction_id = 1\n\t\t\t\tdevice_id = 1\n";
      } else {
        t += "\t\t\t\tstripe_count = " + std::to_string(s.stripes) + "\t# linear\n\n\t\t\t\tstripes = [\n";
        for (int k = 0; k < s.stripes; ++k) {
          t += "\t\t\t\t\t\"" + s.pv + "\", " + std::to_string(s.pe + k * s.extent_count) +
               (k + 1 < s.stripes ? ",\n" : "\n");
        }
        t += "\t\t\t\t]\n";
      }
      t += "\t\t\t}\n";
    }
    t += "\t\t}\n";
  }
  t += "\t}\n}\n# Generated by LVM2 version 2.03.16(2) (2022-05-18): Wed Nov 25 04:43:17 2026\n\n"
       "contents = \"Text Format Volume Group\"\nversion = 1\n\ndescription = \"\"\n\n"
       "creation_host = \"vm\"\t# Linux vm 6.1.0 #1 SMP x86_64\ncreation_time = 1795581797\t# Wed Nov 25\n";
  return t;
}

}  // namespace offhost::mount::testing
