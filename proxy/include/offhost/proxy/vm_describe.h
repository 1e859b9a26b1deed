// A VM as its snapshot driver sees it now, without backing it up: its identity, power state
// and disks (sizes, sources, formats), and whether each disk's next backup into a datastore
// could be incremental. What offhostd's InventoryService answers with VM_VIEW_FULL.
#pragma once

#include <optional>
#include <string>

#include "offhost/snapshot-drivers/driver.h"
#include "offhost/storage/datastore.h"

namespace offhost::proxy {

struct VmDescribeRequest {
  std::string driver = "nbd";
  snapshot_drivers::SnapshotRequest snapshot;  // vm and settings, as for a backup
  // The VM's latest snapshot in the datastore its next backup goes to: the base that backup
  // would be incremental against. None: every disk is reported full.
  std::optional<storage::SnapshotRecord> latest;
};

// The driver's description (snapshot_drivers::SnapshotDriver::Describe), with logical volumes
// on SAN LUNs sized as the LV rather than the LUN. Errors are the driver's: Unavailable when
// the host does not answer, NotFound for an unknown VM, NotSupported for a driver that cannot
// describe a VM.
Result<snapshot_drivers::VmDescription> DescribeVm(VmDescribeRequest request);

}  // namespace offhost::proxy
