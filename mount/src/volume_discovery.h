// Finding a VM's volumes, before any file system is looked at: partition tables (MBR, GPT,
// through libtsk's volume system), whole disks, and LVM2 volume groups whose physical
// volumes are partitions or whole disks, on any of the VM's disks.
#pragma once

#include <memory>
#include <vector>

#include "offhost/mount/guest_files.h"
#include "volume_device.h"

namespace offhost::mount::internal {

struct FoundVolume {
  VolumeInfo info;  // name, offset, length; not_indexed set when it holds no file system
  // The volume's bytes; null when they cannot be read as a whole (a logical volume of a kind
  // not read, or with a PV missing). Kept for LVM physical volumes too, which hold no files.
  std::unique_ptr<VolumeDevice> device;
  bool may_hold_files = true;  // false for LVM physical volumes and unreadable volumes
  std::string vg, lv;          // a logical volume's names in LVM's own terms
};

// Partitions (or the whole disk) of every disk in order, then every logical volume of every
// volume group found, in metadata order. Fails only when a disk cannot be read at all.
Result<std::vector<FoundVolume>> DiscoverVolumes(const std::vector<GuestDisk>& disks);

}  // namespace offhost::mount::internal
