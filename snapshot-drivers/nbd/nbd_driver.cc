// `nbd` driver: disks that are already exported over NBD by someone else (a hypervisor's
// pull-mode export, nbdkit, qemu-nbd). Settings: disk.NAME=URI for each disk, and optionally
// bitmap=CONTEXT, a dirty-bitmap meta context the exports carry, relative to the previous
// backup (the operator vouches for that).
#include "offhost/snapshot-drivers/driver.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"

namespace offhost::snapshot_drivers {
namespace {

class NbdView final : public PointInTimeView {
 public:
  Status Release(bool) override { return Status::OK(); }  // the exports are not ours
};

class NbdDriver final : public SnapshotDriver {
 public:
  bool one_backup_per_vm() const override { return false; }  // the exports are not ours

  Result<VmIdentity> Identify(const SnapshotRequest& req) override {
    if (req.vm.empty()) return Status::InvalidArgument("give the VM's name with --vm NAME");
    return VmIdentity{req.vm, ""};
  }

  Result<std::unique_ptr<PointInTimeView>> Take(const SnapshotRequest& req) override {
    auto view = std::make_unique<NbdView>();
    view->vm_name = req.vm;
    view->consistency_reason = "exports given by the operator";
    std::string bitmap;
    if (auto it = req.settings.find("bitmap"); it != req.settings.end()) bitmap = it->second;
    for (const auto& [key, uri] : req.settings) {
      if (!key.starts_with("disk.")) continue;
      ViewDisk d;
      d.name = key.substr(5);
      d.uri = uri;
      auto dev = OpenNbd(uri);
      if (!dev.ok()) return dev.status().WithContext("disk " + d.name);
      d.size = (*dev)->size();
      if (req.full) {
        d.full_reason = "full backup requested";
      } else if (bitmap.empty()) {
        d.full_reason = "no --bitmap given for this export";
      } else if (req.parent_checkpoint.empty()) {
        d.full_reason = "no previous backup of this VM";
      } else if (req.parent_checkpoint != "nbd-bitmap:" + bitmap) {
        d.full_reason = "the previous backup was not taken with bitmap " + bitmap;
      } else {
        d.dirty_bitmap = bitmap;
      }
      view->disks.push_back(std::move(d));
    }
    if (view->disks.empty()) {
      return Status::InvalidArgument("--disk is required: the nbd driver needs at least one --disk NAME=URI");
    }
    // A bitmap has no name of its own here: the chain is "whatever the operator's bitmap
    // tracks", so every backup is its own checkpoint.
    if (!bitmap.empty()) view->checkpoint = "nbd-bitmap:" + bitmap;
    return std::unique_ptr<PointInTimeView>(std::move(view));
  }

  Result<VmDescription> Describe(const SnapshotRequest& req) override {
    VmDescription out;
    out.name = req.vm;
    std::string bitmap;
    if (auto it = req.settings.find("bitmap"); it != req.settings.end()) bitmap = it->second;
    for (const auto& [key, uri] : req.settings) {
      if (!key.starts_with("disk.")) continue;
      DiskInfo d;
      d.name = key.substr(5);
      d.source = MaskUri(uri);
      auto dev = OpenNbd(uri);
      if (!dev.ok()) return dev.status().WithContext("disk " + d.name);
      d.size = (*dev)->size();
      if (bitmap.empty()) {
        d.full_reason = "no bitmap configured for this export";
      } else if (req.parent_checkpoint != "nbd-bitmap:" + bitmap) {
        d.full_reason = req.parent_checkpoint.empty()
                            ? "no previous backup of this VM"
                            : "the previous backup was not taken with bitmap " + bitmap;
      }
      out.disks.push_back(std::move(d));
    }
    if (out.disks.empty()) return Status::InvalidArgument("the nbd driver needs at least one disk");
    return out;
  }
};

OFFHOST_REGISTER_DRIVER("nbd", "existing NBD exports (--disk NAME=URI [--bitmap CONTEXT])",
                        NbdDriver);

}  // namespace
}  // namespace offhost::snapshot_drivers
