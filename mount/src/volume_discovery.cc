#include "volume_discovery.h"

#include <algorithm>
#include <map>
#include <set>

#include "lvm_metadata.h"
#include "tsk_image.h"

namespace offhost::mount::internal {
namespace {

FoundVolume PlainVolume(const GuestDisk& disk, const std::string& name, uint64_t offset,
                        uint64_t length) {
  FoundVolume v;
  v.info.name = name;
  v.info.offset = offset;
  // A partition table may claim more than the disk has (a disk shrunk after partitioning):
  // read what is there rather than nothing.
  length = std::min(length, disk.device->size() - std::min(offset, disk.device->size()));
  v.info.length = length;
  auto dev = VolumeDevice::Make("volume " + name, {{0, length, disk.device, disk.name, offset}});
  if (dev.ok()) {
    v.device = std::move(*dev);
  } else {
    v.info.not_indexed = "not indexed: " + dev.status().message();
    v.may_hold_files = false;
  }
  return v;
}

std::string DashedUuid(const std::string& u) {
  if (u.size() != 32) return u;
  return u.substr(0, 6) + "-" + u.substr(6, 4) + "-" + u.substr(10, 4) + "-" + u.substr(14, 4) +
         "-" + u.substr(18, 4) + "-" + u.substr(22, 4) + "-" + u.substr(26, 6);
}

// The numbers Linux gives the partitions `parts` (in disk order), so that vda5 here is the
// guest's /dev/vda5: a GPT entry or MBR primary is numbered by its slot in the table (gaps
// stay gaps), MBR logical partitions from 5 on in the order of their extended-table chain
// (TSK numbers those tables 1, 2, ... along the chain). Other tables: in disk order.
std::vector<int> LinuxPartitionNumbers(TSK_VS_TYPE_ENUM type,
                                       const std::vector<const TSK_VS_PART_INFO*>& parts) {
  std::vector<int> numbers(parts.size());
  if (type == TSK_VS_TYPE_GPT || type == TSK_VS_TYPE_DOS) {
    std::vector<size_t> logical;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (type == TSK_VS_TYPE_DOS && parts[i]->table_num > 0) {
        logical.push_back(i);
      } else {
        numbers[i] = parts[i]->slot_num + 1;
      }
    }
    std::stable_sort(logical.begin(), logical.end(),
                     [&](size_t a, size_t b) { return parts[a]->table_num < parts[b]->table_num; });
    for (size_t k = 0; k < logical.size(); ++k) numbers[logical[k]] = 5 + static_cast<int>(k);
    // TSK keeps slots in an int8_t: a table of more than 128 entries wraps. Then disk order.
    std::set<int> seen;
    bool valid = std::all_of(numbers.begin(), numbers.end(),
                             [&](int n) { return n > 0 && seen.insert(n).second; });
    if (valid) return numbers;
  }
  for (size_t i = 0; i < parts.size(); ++i) numbers[i] = static_cast<int>(i) + 1;
  return numbers;
}

// The partitions of one disk, or the disk itself when it has no partition table.
Status AddDiskVolumes(const GuestDisk& disk, std::vector<FoundVolume>* out) {
  OFFHOST_ASSIGN_OR_RETURN(TskImg img, OpenTskImage(*disk.device, "disk " + disk.name));
  TskVs vs(tsk_vs_open(img.get(), 0, TSK_VS_TYPE_DETECT));
  if (!vs) {  // no partition table: a file system or a PV on the whole disk, or nothing
    tsk_error_reset();
    out->push_back(PlainVolume(disk, disk.name, 0, disk.device->size()));
    return Status::OK();
  }
  std::vector<const TSK_VS_PART_INFO*> parts;
  for (TSK_PNUM_T i = 0; i < vs->part_count; ++i) {
    const TSK_VS_PART_INFO* p = tsk_vs_part_get(vs.get(), i);
    if (p && (p->flags & TSK_VS_PART_FLAG_ALLOC)) parts.push_back(p);
  }
  std::vector<int> numbers = LinuxPartitionNumbers(vs->vstype, parts);
  for (size_t i = 0; i < parts.size(); ++i) {
    uint64_t start = static_cast<uint64_t>(parts[i]->start) * vs->block_size;
    uint64_t len = static_cast<uint64_t>(parts[i]->len) * vs->block_size;
    out->push_back(PlainVolume(disk, disk.name + std::to_string(numbers[i]), start, len));
  }
  return Status::OK();
}

struct FoundPv {
  size_t volume;  // index in the volume list
  LvmLabel label;
};

// The logical volume `lv` of `vg` as a volume, or why it cannot be read.
FoundVolume LogicalVolume(const LvmVolumeGroup& vg, const LvmLogicalVolume& lv,
                          const std::map<std::string, FoundPv>& pvs,
                          const std::vector<FoundVolume>& volumes) {
  FoundVolume v;
  v.info.name = DeviceMapperName(vg.name, lv.name);
  v.vg = vg.name;
  v.lv = lv.name;
  v.may_hold_files = false;
  for (const auto& s : lv.segments) v.info.length += s.extent_count * vg.extent_size;
  std::string what =
      "not indexed: logical volume " + lv.name + " of volume group " + vg.name + ": ";
  auto layout = LvmLayout(vg, lv);
  if (!layout.ok()) {
    v.info.not_indexed = what + layout.status().message();
    return v;
  }
  std::vector<VolumePiece> pieces;
  for (const auto& p : *layout) {
    auto found = pvs.find(p.pv_uuid);
    if (found == pvs.end()) {
      v.info.not_indexed = what + "its physical volume " + DashedUuid(p.pv_uuid) +
                           " is on none of the disks in this backup (back up all of the VM's "
                           "disks together)";
      return v;
    }
    const VolumeDevice& pv = *volumes[found->second.volume].device;
    if (p.pv_offset > pv.size() || p.length > pv.size() - p.pv_offset) {
      v.info.not_indexed = what + "extents at PV byte " + std::to_string(p.pv_offset) +
                           " reach past the end of its physical volume " +
                           volumes[found->second.volume].info.name;
      return v;
    }
    // A PV is a partition or a whole disk: one piece, so PV bytes map to disk bytes by adding.
    const VolumePiece& pv_piece = pv.pieces().front();
    pieces.push_back({p.lv_offset, p.length, pv_piece.disk, pv_piece.disk_name,
                      pv_piece.disk_offset + p.pv_offset});
  }
  auto dev = VolumeDevice::Make("logical volume " + v.info.name, std::move(pieces));
  if (!dev.ok()) {
    v.info.not_indexed = what + dev.status().message();
    return v;
  }
  v.info.offset = (*dev)->pieces().front().disk_offset;
  v.info.length = (*dev)->size();
  v.device = std::move(*dev);
  v.may_hold_files = true;
  return v;
}

// Finds the LVM physical volumes among `volumes`, marks them, and appends the logical volumes
// of their volume groups.
void AddLogicalVolumes(std::vector<FoundVolume>* volumes) {
  std::map<std::string, FoundPv> pvs;  // by PV UUID
  std::vector<LvmVolumeGroup> groups;  // the newest metadata of each group, in finding order
  size_t count = volumes->size();
  for (size_t i = 0; i < count; ++i) {
    FoundVolume& v = (*volumes)[i];
    if (!v.device) continue;
    auto label = ReadLvmLabel(*v.device);
    if (!label.ok()) {
      if (label.status().code() != StatusCode::kNotFound) {
        v.info.not_indexed = "not indexed: " + label.status().message();
        v.may_hold_files = false;
      }
      continue;
    }
    v.may_hold_files = false;
    v.info.not_indexed = "not indexed: LVM2 physical volume in no volume group";
    pvs[label->pv_uuid] = {i, *label};
    auto text = ReadLvmMetadataText(*v.device, *label);
    if (!text.ok()) {
      if (text.status().code() != StatusCode::kNotFound) {
        v.info.not_indexed = "not indexed: LVM2 physical volume: " + text.status().message();
      }
      continue;
    }
    auto vg = ParseLvmMetadata(*text);
    if (!vg.ok()) {
      v.info.not_indexed = "not indexed: LVM2 physical volume: " + vg.status().message();
      continue;
    }
    // Every PV with a metadata area carries a copy; after an interrupted change the copies
    // differ, and LVM itself trusts the highest sequence number.
    auto same = std::find_if(groups.begin(), groups.end(), [&](const LvmVolumeGroup& g) {
      return g.id == vg->id && g.name == vg->name;
    });
    if (same == groups.end()) {
      groups.push_back(std::move(*vg));
    } else if (vg->seqno > same->seqno) {
      *same = std::move(*vg);
    }
  }
  for (const auto& vg : groups) {
    for (const auto& pv : vg.pvs) {
      auto found = pvs.find(pv.uuid);
      if (found == pvs.end()) continue;
      (*volumes)[found->second.volume].info.not_indexed =
          "not indexed: LVM2 physical volume of volume group " + vg.name +
          " (its logical volumes are listed as " + DeviceMapperName(vg.name, "*") + ")";
    }
    for (const auto& lv : vg.lvs) {
      // Hidden LVs are the parts of thin pools, RAID and mirrors, snapshot stores: not
      // volumes a guest mounts.
      if (!lv.visible()) continue;
      volumes->push_back(LogicalVolume(vg, lv, pvs, *volumes));
    }
  }
}

}  // namespace

Result<std::vector<FoundVolume>> DiscoverVolumes(const std::vector<GuestDisk>& disks) {
  std::vector<FoundVolume> out;
  for (const auto& d : disks) OFFHOST_RETURN_IF_ERROR(AddDiskVolumes(d, &out));
  AddLogicalVolumes(&out);
  return out;
}

}  // namespace offhost::mount::internal
