// What an iSCSI portal offers, as `offhost discover` and InventoryService.DiscoverIscsiTargets
// show it: SendTargets discovery, each target's LUNs, and the LVM2 logical volumes on each disk
// LUN (shared LVM: one VM disk per logical volume, backed up as LUN-URI#VG/LV).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "offhost/mount/logical_volumes.h"
#include "offhost/snapshot-drivers/iscsi_block_device.h"

namespace offhost::proxy {

struct PortalDiscovery {
  std::vector<snapshot_drivers::IscsiTarget> targets;
  // The logical volumes found on each disk LUN, by the LUN's URI (LUNs with none are absent).
  std::map<std::string, std::vector<mount::LogicalVolumeInfo>> volumes;
  // LUNs whose LVM labels could not be read: still listed, without volumes.
  std::vector<std::string> warnings;
};

// `portal` is iscsi://[USER@]PORTAL[:PORT]; the LUNs are opened as the same USER. Errors are
// DiscoverIscsi's: Unavailable when the portal does not answer.
Result<PortalDiscovery> DiscoverIscsiPortal(const std::string& portal,
                                            const snapshot_drivers::IscsiCredentials& credentials);

// LUN-URI#VG/LV: the URI a logical volume is backed up with.
std::string LogicalVolumeUri(const std::string& lun_uri, const mount::LogicalVolumeInfo& v);

}  // namespace offhost::proxy
