// `libvirt` driver: pull-mode backup through the libvirt C API (plain KVM hosts, OpenStack,
// oVirt, OpenNebula). virDomainBackupBegin starts the point-in-time view and, in the same
// call, a checkpoint; QEMU then exports each disk read-only over NBD (a unix socket here, or
// the host's backup-network address — never a wildcard) with "qemu:dirty-bitmap:backup-DISK"
// listing what changed since the parent checkpoint. Checkpoints are named offhost-*, so a run
// after a proxy crash recognises what an earlier one left.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string_view>
#include <system_error>

#include "checkpoint_name.h"
#include "domain_xml.h"
#include "libvirt_library.h"
#include "offhost/snapshot-drivers/driver.h"
#include "offhost/storage/datastore.h"

namespace offhost::snapshot_drivers {
namespace {


std::string LastError() {
  const char* m = virGetLastErrorMessage();
  return m ? m : "unknown libvirt error";
}

struct ConnCloser {
  void operator()(virConnectPtr c) const { virConnectClose(c); }
};
struct DomainFree {
  void operator()(virDomainPtr d) const { virDomainFree(d); }
};
using ConnPtr = std::unique_ptr<virConnect, ConnCloser>;
using DomainPtr = std::unique_ptr<virDomain, DomainFree>;

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '\'') out += "&apos;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// libvirt prints every error to stderr by default; offhost reports them itself.
void SilenceLibvirt() {
  static const bool once = [] {
    virSetErrorFunc(nullptr, [](void*, virErrorPtr) {});
    return true;
  }();
  (void)once;
}

Result<ConnPtr> Connect(const SnapshotRequest& req) {
  SilenceLibvirt();
  auto it = req.settings.find("connect");
  std::string uri = it == req.settings.end() ? "" : it->second;
  if (uri.empty()) {
    return Status::InvalidArgument("the libvirt driver needs --connect URI, e.g. qemu:///system");
  }
  virConnectPtr c = virConnectOpenAuth(uri.c_str(), LibvirtDefaultAuth(), 0);
  if (!c) {
    return Status::Unavailable("cannot connect to libvirt at " + uri + ": " + LastError() +
                               "; check the URI and that libvirtd runs there");
  }
  return ConnPtr(c);
}

Result<DomainPtr> LookupDomain(virConnectPtr conn, const std::string& ref) {
  if (ref.empty()) return Status::InvalidArgument("give the domain with --domain NAME|UUID");
  bool uuid_like = ref.size() == 36 && std::count(ref.begin(), ref.end(), '-') == 4;
  virDomainPtr d = uuid_like ? virDomainLookupByUUIDString(conn, ref.c_str()) : nullptr;
  if (!d) d = virDomainLookupByName(conn, ref.c_str());
  if (!d) {
    return Status::NotFound("libvirt has no domain '" + ref + "' (by name or UUID); list them "
                            "with: virsh list --all");
  }
  return DomainPtr(d);
}

struct CheckpointFree {
  void operator()(virDomainCheckpointPtr c) const { virDomainCheckpointFree(c); }
};
using CheckpointPtr = std::unique_ptr<virDomainCheckpoint, CheckpointFree>;

// The domain's checkpoints named offhost-*, in one round trip.
std::vector<CheckpointPtr> OurCheckpoints(virDomainPtr dom) {
  std::vector<CheckpointPtr> out;
  virDomainCheckpointPtr* cps = nullptr;
  int n = virDomainListAllCheckpoints(dom, &cps, 0);
  for (int i = 0; i < n; ++i) {
    CheckpointPtr cp(cps[i]);
    if (std::string_view(virDomainCheckpointGetName(cp.get())).starts_with(kCheckpointPrefix)) {
      out.push_back(std::move(cp));
    }
  }
  free(cps);
  return out;
}

// A plain delete merges the checkpoint's changes into its parent, keeping the chain valid.
// One that is gone already is fine.
Status DeleteCheckpoint(virDomainCheckpointPtr cp) {
  if (virDomainCheckpointDelete(cp, 0) < 0 &&
      virGetLastErrorCode() != VIR_ERR_NO_DOMAIN_CHECKPOINT) {
    return Status::IOError("delete checkpoint " + std::string(virDomainCheckpointGetName(cp)) +
                           ": " + LastError());
  }
  return Status::OK();
}

Status DeleteCheckpoint(virDomainPtr dom, const std::string& name) {
  CheckpointPtr cp(virDomainCheckpointLookupByName(dom, name.c_str(), 0));
  return cp ? DeleteCheckpoint(cp.get()) : Status::OK();
}

bool BackupJobRunning(virDomainPtr dom) {
  char* xml = virDomainBackupGetXMLDesc(dom, 0);
  if (!xml) return false;
  bool ours = std::string(xml).find("offhost-") != std::string::npos;
  free(xml);
  return ours;
}

class LibvirtView final : public PointInTimeView {
 public:
  LibvirtView(ConnPtr conn, DomainPtr dom) : conn_(std::move(conn)), dom_(std::move(dom)) {}
  ~LibvirtView() override {
    if (!released_) Release(false).IgnoreError();
  }

  Status Release(bool committed) override {
    if (released_) return Status::OK();
    released_ = true;
    Status first;
    auto note = [&](const Status& st) {
      if (!st.ok() && first.ok()) first = st;
    };
    if (frozen_ && virDomainFSThaw(dom_.get(), nullptr, 0, 0) < 0) {
      note(Status::IOError("thaw the guest's file systems: " + LastError()));
    }
    note(EndExport());
    if (checkpoint_created_) {
      if (committed) {
        // The chain now starts at this view's checkpoint. Build() left no checkpoint of ours
        // but the parent, so that is the one to delete (no listing or lookup round trip).
        if (parent_cp_) note(DeleteCheckpoint(parent_cp_.get()));
      } else {
        note(DeleteCheckpoint(dom_.get(), checkpoint));
      }
    }
    return first.ok() ? first
                      : first.WithContext("releasing the libvirt backup of " + vm_name +
                                          " (the next backup retries the clean-up)");
  }

  // Ends the pull-mode job: libvirt stops its NBD server and removes the scratch files it
  // made. The checkpoint begun with the job stays. Scratch files are removed even when the job
  // does not end (QEMU keeps its open file).
  Status EndExport() override {
    Status st;
    if (job_started_ && BackupJobRunning(dom_.get()) && virDomainAbortJob(dom_.get()) < 0) {
      st = Status::IOError("end the backup job: " + LastError());
    } else {
      job_started_ = false;
    }
    for (const auto& f : scratch_) {
      std::error_code ec;
      std::filesystem::remove(f, ec);
      if (ec && st.ok()) st = Status::IOError("remove scratch file " + f + ": " + ec.message());
    }
    scratch_.clear();
    return st;
  }

  Status Build(const SnapshotRequest& req);

 private:
  void Freeze(const SnapshotRequest& req);
  std::string BackupXml(const std::vector<DomainDisk>& disks, const std::string& parent,
                        const std::string& server);
  std::string CheckpointXml(const std::vector<DomainDisk>& disks);

  ConnPtr conn_;
  DomainPtr dom_;
  std::vector<std::string> scratch_;
  std::string work_dir_;
  std::string scratch_dir_;  // on the hypervisor host
  CheckpointPtr parent_cp_;  // the previous backup's checkpoint, when libvirt has it
  bool frozen_ = false, job_started_ = false, checkpoint_created_ = false, released_ = false;
};

void LibvirtView::Freeze(const SnapshotRequest& req) {
  // Asking libvirt to freeze a guest without the channel costs a round trip (~5 ms) to hear so.
  if (!HasGuestAgentChannel(vm_config)) {
    consistency_reason = "no guest agent: the domain has no org.qemu.guest_agent.0 channel";
    return;
  }
  int timeout = 10;
  if (auto t = req.settings.find("freeze-timeout"); t != req.settings.end()) {
    timeout = std::max(1, std::atoi(t->second.c_str()));
  }
  virDomainAgentSetResponseTimeout(dom_.get(), timeout, 0);
  if (virDomainFSFreeze(dom_.get(), nullptr, 0, 0) < 0) {
    consistency_reason = "guest agent: " + LastError();
    // It may have frozen some file systems before failing: thaw regardless.
    virDomainFSThaw(dom_.get(), nullptr, 0, 0);
    return;
  }
  frozen_ = true;
  consistency = "application";
}

std::string LibvirtView::CheckpointXml(const std::vector<DomainDisk>& domain_disks) {
  std::string x = "<domaincheckpoint><name>" + checkpoint +
                  "</name><description>offhost backup</description><disks>";
  for (const auto& d : domain_disks) {
    x += "<disk name='" + XmlEscape(d.target) + "' checkpoint='" +
         (d.exclude.empty() && d.format == "qcow2" ? "bitmap" : "no") + "'/>";
  }
  return x + "</disks></domaincheckpoint>";
}

std::string LibvirtView::BackupXml(const std::vector<DomainDisk>& domain_disks,
                                   const std::string& parent, const std::string& server) {
  std::string x = "<domainbackup mode='pull'>";
  if (!parent.empty()) x += "<incremental>" + XmlEscape(parent) + "</incremental>";
  x += server + "<disks>";
  for (const auto& d : domain_disks) {
    if (!d.exclude.empty()) {
      x += "<disk name='" + XmlEscape(d.target) + "' backup='no'/>";
      continue;
    }
    std::string scratch = scratch_dir_ + "/offhost-scratch-" + vm_name + "-" + d.target + ".qcow2";
    scratch_.push_back(scratch);
    // In an incremental backup, a disk the parent does not cover is read in full.
    std::string mode = !parent.empty() && !d.full_reason.empty() ? " backupmode='full'" : "";
    x += "<disk name='" + XmlEscape(d.target) + "' backup='yes'" + mode +
         " type='file'><scratch file='" + XmlEscape(scratch) + "'/></disk>";
  }
  return x + "</disks></domainbackup>";
}

Status LibvirtView::Build(const SnapshotRequest& req) {
  work_dir_ = std::filesystem::absolute(req.work_dir).string();
  const std::string& uri = req.settings.at("connect");
  auto scheme_end = uri.find("://");
  bool remote = scheme_end != std::string::npos && scheme_end + 3 < uri.size() && uri[scheme_end + 3] != '/';
  auto setting = [&](const char* key) {
    auto it = req.settings.find(key);
    return it == req.settings.end() ? std::string() : it->second;
  };
  scratch_dir_ = setting("scratch-dir");
  if (scratch_dir_.empty()) scratch_dir_ = remote ? "/var/tmp" : work_dir_;
  if (remote && setting("nbd-address").empty()) {
    return Status::InvalidArgument(
        "libvirt host in " + uri + " is remote: its snapshot must be exported on the backup "
        "network; give --nbd-address with the host's backup-network address");
  }
  char* xml = virDomainGetXMLDesc(dom_.get(), 0);
  if (!xml) return Status::IOError("get the XML of domain " + vm_name + ": " + LastError());
  vm_config = xml;
  free(xml);
  OFFHOST_ASSIGN_OR_RETURN(auto all, ParseDomainDisks(vm_config));
  std::vector<std::string> names;
  for (const auto& d : all) names.push_back(d.target);
  OFFHOST_ASSIGN_OR_RETURN(auto selected, SelectDisks(req, names, vm_name));
  for (auto& d : all) {
    if (d.exclude.empty() && std::find(selected.begin(), selected.end(), d.target) == selected.end()) {
      d.exclude = "not selected (--disk)";
    }
  }

  // A backup job of ours still running is a proxy that died: end it, and drop its checkpoint.
  if (BackupJobRunning(dom_.get())) virDomainAbortJob(dom_.get());
  for (auto& cp : OurCheckpoints(dom_.get())) {
    if (req.parent_checkpoint == virDomainCheckpointGetName(cp.get())) {
      parent_cp_ = std::move(cp);
    } else {
      OFFHOST_RETURN_IF_ERROR(DeleteCheckpoint(cp.get()));
    }
  }

  // Chains are per disk: a disk the parent checkpoint does not track (added since, raw, or
  // not selected then) gets a full (backupmode='full') while the others stay incremental.
  std::string vm_reason;
  std::vector<std::string> tracked;
  if (req.full) {
    vm_reason = "full backup requested";
  } else if (req.parent_checkpoint.empty()) {
    vm_reason = "no previous backup of this VM";
  } else if (parent_cp_) {
    if (char* cp_xml = virDomainCheckpointGetXMLDesc(parent_cp_.get(), 0)) {
      tracked = CheckpointBitmapDisks(cp_xml);
      free(cp_xml);
    }
  } else {
    vm_reason = "checkpoint " + req.parent_checkpoint +
                " is not known to libvirt (deleted, VM re-created or restored)";
  }
  std::vector<DomainDisk> domain_disks;
  for (auto& d : all) {
    if (!d.exclude.empty()) {
      excluded.push_back({d.target, d.exclude});
    } else if (!vm_reason.empty()) {
      d.full_reason = vm_reason;
    } else if (d.format != "qcow2") {
      d.full_reason = "disk " + d.target + " is " + d.format + ", which cannot hold checkpoints";
    } else if (std::find(tracked.begin(), tracked.end(), d.target) == tracked.end()) {
      d.full_reason = "disk " + d.target + " is not in checkpoint " + req.parent_checkpoint +
                      " (added since, or not selected then)";
    }
    domain_disks.push_back(d);
  }
  if (domain_disks.size() == excluded.size()) {
    return Status::NotFound("domain " + vm_name + " has no disk offhost can back up");
  }
  bool any_incremental = false;
  for (const auto& d : domain_disks) any_incremental |= d.exclude.empty() && d.full_reason.empty();
  std::string parent = any_incremental ? req.parent_checkpoint : "";

  std::string server;
  std::function<std::string(const std::string&)> uri_for;
  if (auto it = req.settings.find("nbd-address"); it != req.settings.end() && !it->second.empty()) {
    std::string host = it->second, port = "10809";
    if (host == "0.0.0.0" || host == "::" || host == "[::]" || host == "*") {
      return Status::InvalidArgument("--nbd-address " + host + " is a wildcard; give the host's "
                                     "backup-network address");
    }
    if (auto colon = host.rfind(':'); colon != std::string::npos && host.find(']') == std::string::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
    }
    server = "<server transport='tcp' name='" + XmlEscape(host) + "' port='" + XmlEscape(port) + "'/>";
    uri_for = [=](const std::string& disk) { return "nbd://" + host + ":" + port + "/" + disk; };
  } else {
    std::string sock = work_dir_ + "/offhost-nbd-" + std::to_string(::getpid()) + ".sock";
    std::filesystem::remove(sock);
    server = "<server transport='unix' socket='" + XmlEscape(sock) + "'/>";
    uri_for = [=](const std::string& disk) { return "nbd+unix:///" + disk + "?socket=" + sock; };
  }

  checkpoint = NewCheckpointName();
  std::string backup_xml = BackupXml(domain_disks, parent, server);
  std::string checkpoint_xml = CheckpointXml(domain_disks);
  Freeze(req);
  int rc = virDomainBackupBegin(dom_.get(), backup_xml.c_str(), checkpoint_xml.c_str(), 0);
  std::string begin_error = rc < 0 ? LastError() : "";
  if (frozen_) {
    if (virDomainFSThaw(dom_.get(), nullptr, 0, 0) >= 0) frozen_ = false;
  }
  if (rc < 0) return Status::IOError("start the pull-mode backup of " + vm_name + ": " + begin_error);
  job_started_ = checkpoint_created_ = true;

  for (const auto& d : domain_disks) {
    if (!d.exclude.empty()) continue;
    ViewDisk v;
    v.name = d.target;
    v.uri = uri_for(d.target);
    v.identity = d.source;
    if (!d.full_reason.empty()) v.full_reason = d.full_reason;
    else v.dirty_bitmap = "qemu:dirty-bitmap:backup-" + d.target;
    disks.push_back(v);
  }
  return Status::OK();
}

class LibvirtDriver final : public SnapshotDriver {
 public:
  Result<VmIdentity> Identify(const SnapshotRequest& req) override {
    OFFHOST_ASSIGN_OR_RETURN(ConnPtr conn, Connect(req));
    OFFHOST_ASSIGN_OR_RETURN(DomainPtr dom, LookupDomain(conn.get(), req.vm));
    VmIdentity id = IdentityOf(dom.get());
    // A backup asks for the identity and then takes the view: one connection serves both
    // (opening one costs a few round trips to libvirtd).
    kept_ = std::move(conn);
    kept_dom_ = std::move(dom);
    kept_uri_ = req.settings.count("connect") ? req.settings.at("connect") : "";
    kept_ref_ = req.vm;
    return id;
  }

  Result<std::unique_ptr<PointInTimeView>> Take(const SnapshotRequest& req) override {
    DomainPtr dom = std::move(kept_dom_);
    OFFHOST_ASSIGN_OR_RETURN(ConnPtr conn, ConnectOrReuse(req, &dom));
    if (!dom || req.vm != kept_ref_) {
      OFFHOST_ASSIGN_OR_RETURN(dom, LookupDomain(conn.get(), req.vm));
    }
    VmIdentity id = IdentityOf(dom.get());
    int active = virDomainIsActive(dom.get());
    if (active < 0) {
      return Status::IOError("cannot tell whether domain " + id.name + " runs: " + LastError());
    }
    if (active == 0) return TakeStopped(req, dom.get(), id);
    auto view = std::make_unique<LibvirtView>(std::move(conn), std::move(dom));
    view->vm_name = id.name;
    view->vm_uuid = id.uuid;
    OFFHOST_RETURN_IF_ERROR(view->Build(req));  // on failure ~LibvirtView releases
    return std::unique_ptr<PointInTimeView>(std::move(view));
  }

  // The domain's state and XML, and each disk's capacity (virDomainGetBlockInfo); nothing is
  // started on the host.
  Result<VmDescription> Describe(const SnapshotRequest& req) override {
    OFFHOST_ASSIGN_OR_RETURN(ConnPtr conn, Connect(req));
    OFFHOST_ASSIGN_OR_RETURN(DomainPtr dom, LookupDomain(conn.get(), req.vm));
    VmIdentity id = IdentityOf(dom.get());
    VmDescription out;
    out.name = id.name;
    out.uuid = id.uuid;
    int state = 0, reason = 0;
    if (virDomainGetState(dom.get(), &state, &reason, 0) == 0) {
      out.power_state = state == VIR_DOMAIN_RUNNING   ? "running"
                        : state == VIR_DOMAIN_PAUSED  ? "paused"
                        : state == VIR_DOMAIN_SHUTOFF ? "stopped"
                                                      : "";
    }
    char* xml = virDomainGetXMLDesc(dom.get(), 0);
    if (!xml) return Status::IOError("get the XML of domain " + id.name + ": " + LastError());
    std::string text = xml;
    free(xml);
    OFFHOST_ASSIGN_OR_RETURN(auto all, ParseDomainDisks(text));
    std::vector<std::string> names;
    for (const auto& d : all) names.push_back(d.target);
    OFFHOST_ASSIGN_OR_RETURN(auto selected, SelectDisks(req, names, id.name));
    std::vector<std::string> tracked;
    bool parent_known = false;
    if (!req.parent_checkpoint.empty()) {
      if (virDomainCheckpointPtr cp =
              virDomainCheckpointLookupByName(dom.get(), req.parent_checkpoint.c_str(), 0)) {
        parent_known = true;
        if (char* cp_xml = virDomainCheckpointGetXMLDesc(cp, 0)) {
          tracked = CheckpointBitmapDisks(cp_xml);
          free(cp_xml);
        }
        virDomainCheckpointFree(cp);
      }
    }
    for (const auto& d : all) {
      if (!d.exclude.empty()) {
        out.excluded.push_back({d.target, d.exclude});
        continue;
      }
      if (std::find(selected.begin(), selected.end(), d.target) == selected.end()) {
        out.excluded.push_back({d.target, "not selected (--disk)"});
        continue;
      }
      DiskInfo info;
      info.name = d.target;
      info.source = d.source;
      info.format = d.format;
      virDomainBlockInfo block{};
      if (virDomainGetBlockInfo(dom.get(), d.target.c_str(), &block, 0) == 0) {
        info.size = block.capacity;
      }
      if (req.parent_checkpoint.empty()) {
        info.full_reason = "no previous backup of this VM";
      } else if (!parent_known) {
        info.full_reason = "checkpoint " + req.parent_checkpoint +
                           " is not known to libvirt (deleted, VM re-created or restored)";
      } else if (d.format != "qcow2") {
        info.full_reason =
            "disk " + d.target + " is " + d.format + ", which cannot hold checkpoints";
      } else if (std::find(tracked.begin(), tracked.end(), d.target) == tracked.end()) {
        info.full_reason = "disk " + d.target + " is not in checkpoint " + req.parent_checkpoint;
      }
      out.disks.push_back(std::move(info));
    }
    return out;
  }

  // What a proxy killed mid-backup left on the host: our pull-mode backup job (QEMU's NBD
  // export and its scratch overlays end with it), the scratch files in the proxy's work
  // folder, and our checkpoints other than the parent (deleting one merges its changes into
  // its parent, so the chain stays valid).
  Result<std::vector<std::string>> ReleaseLeftovers(const SnapshotRequest& req) override {
    OFFHOST_ASSIGN_OR_RETURN(ConnPtr conn, Connect(req));
    OFFHOST_ASSIGN_OR_RETURN(DomainPtr dom, LookupDomain(conn.get(), req.vm));
    std::string name = virDomainGetName(dom.get());
    std::vector<std::string> released;
    if (BackupJobRunning(dom.get())) {
      if (virDomainAbortJob(dom.get()) < 0) {
        return Status::IOError("end the backup job offhost left on domain " + name + ": " +
                               LastError() + "; end it with: virsh domjobabort " + name);
      }
      released.push_back("pull-mode backup job of domain " + name);
    }
    for (const auto& cp : OurCheckpoints(dom.get())) {
      std::string cp_name = virDomainCheckpointGetName(cp.get());
      if (cp_name == req.parent_checkpoint) continue;
      OFFHOST_RETURN_IF_ERROR(DeleteCheckpoint(cp.get()));
      released.push_back("checkpoint " + cp_name);
    }
    if (!req.work_dir.empty()) {
      const std::string prefix = "offhost-scratch-" + name + "-";
      std::error_code ec;
      for (const auto& entry : std::filesystem::directory_iterator(req.work_dir, ec)) {
        std::string file = entry.path().filename().string();
        if (file.starts_with(prefix) && std::filesystem::remove(entry.path(), ec)) {
          released.push_back("scratch file " + entry.path().string());
        }
      }
    }
    return released;
  }

 private:
  // A domain that is shut off (or saved to disk) has no QEMU to take a view from, and its
  // disks cannot change under the backup: their image files are read as they are, through
  // the image driver, when this proxy reaches them (the host is this machine, or its storage
  // is mounted here at the same paths, as shared storage often is).
  Result<std::unique_ptr<PointInTimeView>> TakeStopped(const SnapshotRequest& req,
                                                       virDomainPtr dom, const VmIdentity& id) {
    char* xml = virDomainGetXMLDesc(dom, 0);
    if (!xml) return Status::IOError("get the XML of domain " + id.name + ": " + LastError());
    std::string config = xml;
    free(xml);
    OFFHOST_ASSIGN_OR_RETURN(auto all, ParseDomainDisks(config));
    std::vector<std::string> names;
    for (const auto& d : all) names.push_back(d.target);
    OFFHOST_ASSIGN_OR_RETURN(auto selected, SelectDisks(req, names, id.name));
    SnapshotRequest image;
    // Only names the image driver's sockets and helper processes.
    image.vm = storage::ValidateName("VM", id.name).ok() ? id.name : id.uuid;
    image.work_dir = req.work_dir;
    std::vector<ExcludedDisk> excluded;
    for (const auto& d : all) {
      if (!d.exclude.empty()) {
        excluded.push_back({d.target, d.exclude});
        continue;
      }
      if (std::find(selected.begin(), selected.end(), d.target) == selected.end()) continue;
      std::error_code ec;
      if (d.source.empty() || !std::filesystem::exists(d.source, ec)) {
        return Status::FailedPrecondition(
            "domain " + id.name + " is not running and its disk " + d.target + " (" +
            d.source + ") is not reachable from this proxy: start the VM (a running VM is "
            "backed up through libvirt), or mount the host's storage here at the same path");
      }
      image.settings["disk." + d.target] = d.source;
    }
    OFFHOST_ASSIGN_OR_RETURN(auto driver, MakeDriver("image"));
    OFFHOST_ASSIGN_OR_RETURN(auto view, driver->Take(image));
    view->vm_uuid = id.uuid;
    view->vm_config = config;
    view->excluded = std::move(excluded);
    view->consistency_reason = "domain " + id.name +
                               " is not running: its disk images were read as they are "
                               "(image driver)";
    return view;
  }

  // The connection kept by Identify when it is still alive and for the same URI, else a new one
  // (then the domain Identify kept, which belongs to the old one, is dropped too).
  Result<ConnPtr> ConnectOrReuse(const SnapshotRequest& req, DomainPtr* dom) {
    ConnPtr kept = std::move(kept_);
    auto it = req.settings.find("connect");
    if (kept && it != req.settings.end() && it->second == kept_uri_ &&
        virConnectIsAlive(kept.get()) == 1) {
      return kept;
    }
    dom->reset();
    return Connect(req);
  }

  static VmIdentity IdentityOf(virDomainPtr dom) {
    VmIdentity id;
    id.name = virDomainGetName(dom);
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (virDomainGetUUIDString(dom, uuid) == 0) id.uuid = uuid;
    return id;
  }

  // Identify's connection and domain, for the Take that follows it (each costs round trips).
  ConnPtr kept_;
  DomainPtr kept_dom_;
  std::string kept_uri_, kept_ref_;
};

OFFHOST_REGISTER_DRIVER("libvirt", "a libvirt domain, pull-mode backup (--connect URI --domain NAME|UUID)",
                        LibvirtDriver);

}  // namespace
}  // namespace offhost::snapshot_drivers
