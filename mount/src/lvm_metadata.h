// LVM2 physical volumes and volume-group metadata, read from a volume's bytes without
// device-mapper. Why our own reader and not libvslvm: Debian 12's libvslvm 20181227 fails on
// every logical volume with more than one segment ("libvslvm_volume_group_get_physical_volume
// _by_name: invalid physical volume value already set") — the common shape of an LV grown by
// lvextend — and does not expose a segment's type or an LV's status, so it cannot tell a
// linear LV from a thin, RAID or snapshot one. The format is small and stable (LVM2 text
// format, version 1, unchanged since 2004); see lvm2's lib/format_text/layout.h.
//
// Label: in one of the first four 512-byte sectors, all little-endian.
//   0 "LABELONE" | 8 sector number u64 | 16 crc u32 | 20 offset of the PV header u32 | 24 "LVM2 001"
// PV header (at label + offset): 32-byte PV UUID (no dashes) | device size u64 | data areas
//   (offset u64, size u64)... ending with a zero pair | metadata areas, the same way.
//   The first data area's offset is pe_start in bytes.
// Metadata area header (at a metadata area's offset): crc u32 | 16-byte magic
//   " LVM2 x[5A%r0N*>" | version u32 (1) | start u64 | size u64 | raw locations (offset u64,
//   size u64, crc u32, flags u32)... ending with zeros. The first location is the current
//   metadata text, at `offset` from the area's start, in a ring that wraps to byte 512.
// Metadata text: sections `name { ... }`, values `key = 1`, `key = "s"`, `key = [ "a", 1 ]`,
//   '#' comments. The volume group is the top-level section holding physical_volumes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "offhost/common/block_device.h"

namespace offhost::mount::internal {

struct LvmLabel {
  std::string pv_uuid;  // 32 characters, no dashes
  uint64_t device_size = 0;
  uint64_t pe_start = 0;  // bytes
  std::vector<std::pair<uint64_t, uint64_t>> metadata_areas;  // (offset, size) in bytes
};

struct LvmPhysicalVolume {
  std::string name;  // "pv0", what segments refer to
  std::string uuid;  // no dashes
  uint64_t pe_start = 0;  // bytes from the PV's start to extent 0
  uint64_t pe_count = 0;
};

struct LvmSegment {
  uint64_t start_extent = 0, extent_count = 0;  // in the LV
  std::string type;                             // "striped" for linear LVs
  uint64_t stripe_count = 0;
  std::vector<std::pair<std::string, uint64_t>> stripes;  // (PV name, first extent on it)
};

struct LvmLogicalVolume {
  std::string name;
  std::vector<std::string> status;  // "READ", "WRITE", "VISIBLE"...
  std::vector<LvmSegment> segments;
  bool visible() const;  // sub-volumes of thin pools, RAID, mirrors... are not
};

struct LvmVolumeGroup {
  std::string name, id;
  uint64_t seqno = 0;
  uint64_t extent_size = 0;  // bytes
  std::vector<LvmPhysicalVolume> pvs;
  std::vector<LvmLogicalVolume> lvs;
};

// One stretch of a logical volume on a physical volume.
struct LvmPiece {
  uint64_t lv_offset = 0, length = 0;  // bytes
  std::string pv_uuid;
  uint64_t pv_offset = 0;  // bytes from the PV's start
};

// NotFound when `pv` has no LVM2 label; Corruption when it has a damaged one.
Result<LvmLabel> ReadLvmLabel(BlockDevice& pv);
// The current metadata text of the PV's first readable metadata area; NotFound when it has
// none (pvcreate --metadatacopies 0: another PV of the group carries it).
Result<std::string> ReadLvmMetadataText(BlockDevice& pv, const LvmLabel& label);
// Corruption with the line when the text is not LVM2 metadata.
Result<LvmVolumeGroup> ParseLvmMetadata(std::string_view text);
// Where each byte of `lv` lies: linear LVs (segments of type "striped" with one stripe) in any
// number of segments. NotSupported naming the segment and its type otherwise (thin, RAID,
// mirror, snapshot, cache, or striping over several PVs); Corruption for impossible extents.
Result<std::vector<LvmPiece>> LvmLayout(const LvmVolumeGroup& vg, const LvmLogicalVolume& lv);
// Device-mapper's name for an LV: "VG-LV" with each '-' inside a name doubled.
std::string DeviceMapperName(const std::string& vg, const std::string& lv);

}  // namespace offhost::mount::internal
