#include "offhost/proxy/vm_describe.h"

#include "offhost/mount/logical_volumes.h"

namespace offhost::proxy {
namespace {

// The LV's size for a disk that is "VG/LV" on its device (shared LVM on a LUN).
Status SizeLogicalVolume(snapshot_drivers::DiskInfo& d) {
  if (d.logical_volume.empty() || !d.device) return Status::OK();
  OFFHOST_ASSIGN_OR_RETURN(auto lvs, mount::ListLogicalVolumes(*d.device));
  std::string names;
  for (const auto& lv : lvs) {
    if (lv.vg + "/" + lv.lv == d.logical_volume) {
      d.size = lv.size;
      return Status::OK();
    }
    names += (names.empty() ? "" : ", ") + lv.vg + "/" + lv.lv;
  }
  return Status::NotFound("disk " + d.name + ": no logical volume " + d.logical_volume + " on " +
                          d.source + " (it has: " + (names.empty() ? "none" : names) + ")");
}

}  // namespace

Result<snapshot_drivers::VmDescription> DescribeVm(VmDescribeRequest req) {
  OFFHOST_ASSIGN_OR_RETURN(auto driver, snapshot_drivers::MakeDriver(req.driver));
  const std::optional<storage::SnapshotRecord>& latest = req.latest;
  req.snapshot.parent_checkpoint = latest ? latest->meta.checkpoint : "";
  OFFHOST_ASSIGN_OR_RETURN(auto vm, driver->Describe(req.snapshot));
  for (auto& d : vm.disks) {
    OFFHOST_RETURN_IF_ERROR(SizeLogicalVolume(d));
    d.device.reset();  // described, not read: let go of the LUN now
    // The same name for another VM (a re-created domain) starts a new chain, as BackupVm does.
    if (latest && !vm.uuid.empty() && !latest->meta.vm_uuid.empty() &&
        latest->meta.vm_uuid != vm.uuid) {
      d.full_reason = "the latest snapshot of " + latest->vm + " is of another VM (UUID " +
                      latest->meta.vm_uuid + ")";
    }
  }
  return vm;
}

}  // namespace offhost::proxy
