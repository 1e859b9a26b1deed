// LVM2 logical volumes on one disk as disks of their own: shared LVM on a SAN LUN, the common
// way KVM clusters keep VM disks (one volume group on a LUN, one logical volume per VM disk),
// read through each LV's segments without device-mapper and without the hypervisor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "offhost/common/block_device.h"

namespace offhost::mount {

struct LogicalVolumeInfo {
  std::string vg, lv;
  uint64_t size = 0;        // bytes
  std::string unreadable;   // why it cannot be read (thin, RAID, a PV on another disk...)
};

// The visible logical volumes of the volume groups whose physical volume is `disk` (the whole
// disk or one of its partitions); empty when it holds none.
Result<std::vector<LogicalVolumeInfo>> ListLogicalVolumes(BlockDevice& disk);

// Logical volume `lv` of volume group `vg` on `disk`, read-only. NotFound lists the LVs there
// are; NotSupported says why one cannot be read. The result keeps `disk` alive.
Result<std::unique_ptr<BlockDevice>> OpenLogicalVolume(std::shared_ptr<BlockDevice> disk,
                                                       const std::string& vg,
                                                       const std::string& lv);

}  // namespace offhost::mount
