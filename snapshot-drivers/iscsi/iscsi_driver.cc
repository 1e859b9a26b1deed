// `iscsi` driver (Direct SAN): disks that are SAN LUNs — typically the array's snapshot of a
// datastore LUN, made by the storage team — read straight over iSCSI, off the hypervisors.
// Settings: disk.NAME=iscsi://[USER@]PORTAL[:PORT]/TARGET-IQN/LUN[#VG/LV] for each disk, and
// the login settings of IscsiCredentialsFromSettings. The LUNs are only ever read.
#include "offhost/snapshot-drivers/driver.h"
#include "offhost/snapshot-drivers/iscsi_block_device.h"

namespace offhost::snapshot_drivers {
namespace {

class IscsiView final : public PointInTimeView {
 public:
  Status Release(bool) override { return Status::OK(); }  // the array's snapshot is not ours
};

// "VG/LV" from "iscsi://.../LUN#VG/LV"; empty without a fragment.
std::string LogicalVolume(const std::string& uri) {
  auto hash = uri.find('#');
  return hash == std::string::npos ? "" : uri.substr(hash + 1);
}

class IscsiDriver final : public SnapshotDriver {
 public:
  bool one_backup_per_vm() const override { return false; }  // nothing is created on the SAN

  Result<VmIdentity> Identify(const SnapshotRequest& req) override {
    if (req.vm.empty()) return Status::InvalidArgument("give the VM's name with --vm NAME");
    return VmIdentity{req.vm, ""};
  }

  Result<std::unique_ptr<PointInTimeView>> Take(const SnapshotRequest& req) override {
    auto view = std::make_unique<IscsiView>();
    view->vm_name = req.vm;
    view->consistency_reason = "LUN snapshot taken by the array, without the guest's help";
    IscsiOpenOptions options;
    options.credentials = IscsiCredentialsFromSettings(req.settings);
    for (const auto& [key, uri] : req.settings) {
      if (!key.starts_with("disk.")) continue;
      OFFHOST_ASSIGN_OR_RETURN(ViewDisk d, OpenDisk(key.substr(5), uri, options));
      view->disks.push_back(std::move(d));
    }
    if (view->disks.empty()) {
      return Status::InvalidArgument(
          "--disk is required: the iscsi driver needs at least one "
          "--disk NAME=iscsi://PORTAL/TARGET-IQN/LUN");
    }
    return std::unique_ptr<PointInTimeView>(std::move(view));
  }

  // Logs in to each LUN and reads its size, as Take does; the LUN is not read.
  Result<VmDescription> Describe(const SnapshotRequest& req) override {
    VmDescription out;
    out.name = req.vm;
    IscsiOpenOptions options;
    options.credentials = IscsiCredentialsFromSettings(req.settings);
    for (const auto& [key, uri] : req.settings) {
      if (!key.starts_with("disk.")) continue;
      OFFHOST_ASSIGN_OR_RETURN(ViewDisk v, OpenDisk(key.substr(5), uri, options));
      DiskInfo d;
      d.name = v.name;
      d.size = v.size;
      d.source = v.uri;
      d.format = "raw";
      d.full_reason = v.full_reason;
      d.logical_volume = v.logical_volume;
      d.device = std::move(v.device);
      out.disks.push_back(std::move(d));
    }
    if (out.disks.empty()) {
      return Status::InvalidArgument("the iscsi driver needs at least one disk");
    }
    return out;
  }

 private:
  static Result<ViewDisk> OpenDisk(const std::string& name, const std::string& uri,
                                   const IscsiOpenOptions& options) {
    if (!IsIscsiUri(uri)) {
      return Status::InvalidArgument("disk " + name + ": '" + MaskIscsiUri(uri) +
                                     "' is not an iSCSI URI; use "
                                     "iscsi://[USER@]PORTAL[:PORT]/TARGET-IQN/LUN[#VG/LV]");
    }
    auto dev = OpenIscsi(uri, options);
    if (!dev.ok()) return dev.status().WithContext("disk " + name);
    ViewDisk d;
    d.name = name;
    d.uri = MaskIscsiUri(uri);
    d.size = (*dev)->size();
    d.device = std::move(*dev);
    d.logical_volume = LogicalVolume(uri);
    // A LUN keeps no record of what changed: every backup reads it whole, and dedupe still
    // stores only the chunks that are new.
    d.full_reason = "an iSCSI LUN has no changed-block tracking";
    // Whoever logs in, it is the same LUN.
    d.identity = IscsiUriWithoutUser(d.uri);
    return d;
  }
};

OFFHOST_REGISTER_DRIVER("iscsi",
                        "SAN LUNs over iSCSI, Direct SAN (--disk "
                        "NAME=iscsi://PORTAL/TARGET-IQN/LUN[#VG/LV] [--chap-secret-file F])",
                        IscsiDriver);

}  // namespace
}  // namespace offhost::snapshot_drivers
