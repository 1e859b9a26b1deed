// Snapshot drivers: how offhost gets a read-only, point-in-time view of a VM's disks from a
// hypervisor (or a SAN, or disk images). A driver is one folder snapshot-drivers/<name>/ whose
// .cc ends with OFFHOST_REGISTER_DRIVER; nothing else changes when one is added.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "offhost/common/block_device.h"
#include "offhost/common/status.h"

namespace offhost::snapshot_drivers {

struct ViewDisk {
  std::string name;  // the hypervisor's name for the disk ("vda")
  std::string uri;   // read-only NBD export of the point-in-time view
  uint64_t size = 0;
  // NBD meta context listing what changed since the request's parent checkpoint
  // ("qemu:dirty-bitmap:backup-vda"); empty when this disk needs a full backup.
  std::string dirty_bitmap;
  std::string full_reason;  // why dirty_bitmap is empty
  // What the hypervisor has behind the disk (image file, device, volume). An incremental is
  // only taken against a previous backup of the same disk identity: a disk whose image was
  // swapped gets a full backup.
  std::string identity;
  // The view's device when the driver opened it itself (iscsi); otherwise the proxy opens
  // `uri` over NBD.
  std::shared_ptr<BlockDevice> device;
  // "VG/LV": the disk is this LVM logical volume on the device (shared LVM on a SAN LUN). The
  // proxy maps it through the LV's segments; `size` is then the LV's.
  std::string logical_volume;
};

struct ExcludedDisk {
  std::string name;
  std::string reason;  // e.g. "pass-through LUN: back it up from the SAN"
};

struct SnapshotRequest {
  std::string vm;                               // name or UUID, as the driver understands it
  std::map<std::string, std::string> settings;  // driver settings: connect=, qmp=, disk.vda=, ...
  // The checkpoint of the datastore's latest snapshot of this VM; empty for the first backup.
  std::string parent_checkpoint;
  bool full = false;     // do not offer dirty bitmaps
  std::string work_dir;  // a private directory for sockets and scratch files
};

// A point-in-time view of a VM. Release() always runs: on success, failure and cancel (the
// destructor releases as failed if nobody did); a proxy that crashed leaves names the driver
// recognises and removes at its next Take().
class PointInTimeView {
 public:
  virtual ~PointInTimeView() = default;

  std::string vm_name;
  std::string vm_uuid;
  std::string vm_config;  // the hypervisor's definition of the VM (domain XML, QEMU command)
  std::string consistency = "crash";  // or "application"
  std::string consistency_reason;     // why not application-consistent, when it is not
  std::string checkpoint;             // created with this view: the next backup's parent
  std::vector<ViewDisk> disks;
  std::vector<ExcludedDisk> excluded;

  // Stops serving the disks (backup job, NBD export, scratch space) once the backup has read
  // all it needs, so the hypervisor's teardown overlaps the datastore's commit. It leaves the
  // checkpoints alone: what becomes of them depends on the commit, and Release decides. A
  // failure here is not final: Release ends what is still running and reports it.
  virtual Status EndExport() { return Status::OK(); }

  // `committed`: the backup of this view is durable in the datastore, so `checkpoint` becomes
  // the chain's head and older checkpoints can go. Otherwise the view's checkpoint is dropped
  // and the parent stays valid for the next run.
  virtual Status Release(bool committed) = 0;
};

struct VmIdentity {
  std::string name;  // offhost's name for the VM (datastore key)
  std::string uuid;  // the hypervisor's UUID, when it has one
};

// A disk as the driver sees it now, found without taking a view (DescribeVm).
struct DiskInfo {
  std::string name;    // the name a backup stores it under ("vda")
  uint64_t size = 0;   // bytes; for a logical volume, the LUN's (the proxy maps it)
  std::string source;  // where it is read from, credentials masked: URI, image path, file
  std::string format;  // "raw", "qcow2", ... where known
  // Why the next backup of this disk would be full; empty when it can be incremental against
  // the request's parent_checkpoint. Best effort: the backup decides.
  std::string full_reason;
  std::string logical_volume;  // "VG/LV" on `device`, as in ViewDisk
  std::shared_ptr<BlockDevice> device;
};

// What a driver tells of a VM without creating anything on the hypervisor or the SAN
// (offhost.v1 InventoryService, VM_VIEW_FULL).
struct VmDescription {
  std::string name;  // the hypervisor's name for the VM
  std::string uuid;
  std::string power_state;  // "running", "paused", "stopped"; empty when the driver cannot tell
  std::vector<DiskInfo> disks;
  std::vector<ExcludedDisk> excluded;
};

class SnapshotDriver {
 public:
  virtual ~SnapshotDriver() = default;
  // Which VM the request means, before anything is done to it.
  virtual Result<VmIdentity> Identify(const SnapshotRequest& request) = 0;
  // Whether two backups of one VM must not overlap on this proxy (true for drivers that
  // create hypervisor-side objects and clean up a crashed run's leftovers by name).
  virtual bool one_backup_per_vm() const { return true; }
  virtual Result<std::unique_ptr<PointInTimeView>> Take(const SnapshotRequest& request) = 0;
  // The VM and its disks as the driver sees them now: reads only (sizes, formats, the
  // hypervisor's definition), never a view or a checkpoint. The request's parent_checkpoint is
  // the latest snapshot's, so each disk can say whether its next backup would be incremental.
  // The default answers NotSupported.
  virtual Result<VmDescription> Describe(const SnapshotRequest& request);
  // Removes what an interrupted backup of this VM left behind when the proxy died before its
  // view's Release() ran (kill -9, power loss): exports, block jobs, scratch nodes and files,
  // checkpoints other than the request's parent_checkpoint (which stays a valid base), helper
  // processes. The caller holds the VM's backup lock, so nothing of a running backup is
  // touched. Returns one line per thing released (empty: nothing was left). Take() does the
  // same first, so this only makes the release happen before the VM's next backup. The
  // default releases nothing (drivers that create nothing outside the proxy's process).
  virtual Result<std::vector<std::string>> ReleaseLeftovers(const SnapshotRequest& request);
};

// Applies the request's "only.NAME" settings (--disk NAME): keeps the named disks of `all`,
// fails naming a disk the VM does not have. No "only." settings keeps every disk.
Result<std::vector<std::string>> SelectDisks(const SnapshotRequest& request,
                                             const std::vector<std::string>& all,
                                             const std::string& vm);

using DriverFactory = std::unique_ptr<SnapshotDriver> (*)();

// Registry (filled by OFFHOST_REGISTER_DRIVER at start-up).
bool RegisterDriver(const char* name, const char* summary, DriverFactory factory);
Result<std::unique_ptr<SnapshotDriver>> MakeDriver(const std::string& name);
// "name: summary" lines, sorted.
std::vector<std::string> DescribeDrivers();

}  // namespace offhost::snapshot_drivers

#define OFFHOST_REGISTER_DRIVER(name, summary, Class)                                     \
  static const bool offhost_driver_registered_##Class =                                   \
      ::offhost::snapshot_drivers::RegisterDriver(name, summary, []() {                   \
        return std::unique_ptr<::offhost::snapshot_drivers::SnapshotDriver>(new Class()); \
      })
