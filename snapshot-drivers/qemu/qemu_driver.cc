// `qemu` driver: a running QEMU process driven through its QMP socket, for hosts without
// libvirt. The point-in-time view is image fleecing (QEMU 7.2): a temporary qcow2 overlay
// backed by the disk's node, filled by a copy-before-write job (blockdev-backup sync=none),
// exported read-only over NBD on a unix socket. Checkpoints are dirty bitmaps (persistent on
// qcow2) added in the same transaction that starts the view. Everything created is named
// offhost-*, so a later run recognises and removes what a crashed proxy left behind.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <system_error>
#include <thread>

#include "checkpoint_name.h"
#include "offhost/snapshot-drivers/driver.h"
#include "qmp_client.h"
#include "run_program.h"

namespace offhost::snapshot_drivers {
namespace {

using nlohmann::json;


bool Ours(const std::string& name) { return name.starts_with(kCheckpointPrefix); }

struct QemuDisk {
  std::string name;  // the device id ("vd0"), else the node name
  std::string node;  // top block node
  std::string format;
  uint64_t size = 0;
  json bitmaps = json::array();
  std::string identity;  // the image file behind the node
};

// What this view created on one disk, so Release undoes exactly that.
struct DiskState {
  QemuDisk disk;
  std::string scratch, fleece, job, export_id;
  bool fleece_added = false, job_started = false, exported = false, bitmap_added = false;
  bool use_parent = false;  // the parent bitmap was frozen for this incremental
  std::string parent_lost_reason;
};

std::string DeviceName(const json& dev) {
  std::string qdev = dev.value("qdev", "");
  // "/machine/peripheral/vd0/virtio-backend" → "vd0"
  const std::string peripheral = "/machine/peripheral/";
  if (qdev.starts_with(peripheral)) {
    std::string rest = qdev.substr(peripheral.size());
    return rest.substr(0, rest.find('/'));
  }
  std::string device = dev.value("device", "");
  return device.empty() ? dev["inserted"].value("node-name", "") : device;
}

const json* FindBitmap(const QemuDisk& d, const std::string& name) {
  for (const auto& b : d.bitmaps) {
    if (b.value("name", "") == name) return &b;
  }
  return nullptr;
}

// Bitmaps of ours on disk `d` other than `keep` (the parent checkpoint) are a crashed run's
// checkpoints. If that run left `parent` frozen (disabled), what those bitmaps saw since is
// merged back into it before they go, and it records again: the parent stays a valid base
// for an incremental. `parent` is `keep`, or "" when the parent is not usable.
Status RemoveLeftoverBitmaps(QmpClient& qmp, const QemuDisk& d, const std::string& keep,
                             const std::string& parent, std::vector<std::string>* released) {
  const json* p = parent.empty() ? nullptr : FindBitmap(d, parent);
  bool frozen = p && !p->value("recording", true);
  for (const auto& b : d.bitmaps) {
    std::string name = b.value("name", "");
    if (!Ours(name) || name == keep) continue;
    if (frozen) {
      OFFHOST_RETURN_IF_ERROR(
          qmp.Execute("block-dirty-bitmap-merge",
                      {{"node", d.node}, {"target", parent}, {"bitmaps", {name}}})
              .status());
    }
    OFFHOST_RETURN_IF_ERROR(
        qmp.Execute("block-dirty-bitmap-remove", {{"node", d.node}, {"name", name}}).status());
    if (released) released->push_back("dirty bitmap " + name + " on disk " + d.name);
  }
  if (frozen) {
    OFFHOST_RETURN_IF_ERROR(
        qmp.Execute("block-dirty-bitmap-enable", {{"node", d.node}, {"name", parent}}).status());
    if (released) {
      released->push_back("dirty bitmap " + parent + " on disk " + d.name + " records again");
    }
  }
  return Status::OK();
}

class QemuView final : public PointInTimeView {
 public:
  QemuView(std::unique_ptr<QmpClient> qmp, std::string qmp_path, std::string parent)
      : qmp_(std::move(qmp)), qmp_path_(std::move(qmp_path)), parent_(std::move(parent)) {}

  // QEMU serves one QMP client at a time: the monitor is let go while the disks are read.
  void Disconnect() { qmp_.reset(); }
  ~QemuView() override {
    if (!released_) Release(false).IgnoreError();
  }

  Status Release(bool committed) override {
    if (released_) return Status::OK();
    released_ = true;
    Status first = EndExport();
    if (qmp_) {
      for (auto& s : disks_) {
        Status st = SettleBitmaps(s, committed);
        if (first.ok()) first = st;
      }
    }
    return first.ok() ? first
                      : first.WithContext("releasing the QEMU snapshot of " + vm_name +
                                          " (a later backup retries the clean-up)");
  }

  // Removes the exports, the NBD server, the jobs, the fleecing nodes and their scratch files;
  // each is marked gone once it is, so Release does not ask again. Bitmaps stay for Release.
  Status EndExport() override {
    if (!qmp_) {
      auto qmp = QmpClient::Connect(qmp_path_);
      if (!qmp.ok()) return qmp.status();
      qmp_ = std::move(*qmp);
    }
    Status first;
    auto done = [&](const Status& st) {
      if (!st.ok() && first.ok()) first = st;
      return st.ok();
    };
    done(Thaw());
    for (auto& s : disks_) {
      if (s.exported) {
        s.exported = !done(
            qmp_->Execute("block-export-del", {{"id", s.export_id}, {"mode", "hard"}}).status());
      }
    }
    if (nbd_started_) nbd_started_ = !done(qmp_->Execute("nbd-server-stop").status());
    for (auto& s : disks_) {
      if (s.job_started) s.job_started = !done(CancelJob(*qmp_, s.job));
    }
    for (auto& s : disks_) {
      if (s.fleece_added) s.fleece_added = !done(DeleteNode(*qmp_, s.fleece));
      std::error_code ec;
      if (!s.scratch.empty()) std::filesystem::remove(s.scratch, ec);
      if (ec) done(Status::IOError("remove scratch file " + s.scratch + ": " + ec.message()));
      s.scratch.clear();
    }
    return first;
  }

  Status Build(const SnapshotRequest& req);

  static Status CancelJob(QmpClient& qmp, const std::string& job);
  static Status DeleteNode(QmpClient& qmp, const std::string& node);

 private:
  Status Freeze(const SnapshotRequest& req);
  Status Thaw();
  Status SettleBitmaps(DiskState& s, bool committed);
  Status PrepareDisk(DiskState& s, const SnapshotRequest& req, const std::string& work_dir);

  std::unique_ptr<QmpClient> qmp_;
  std::string qmp_path_;
  std::unique_ptr<GuestAgentClient> agent_;
  std::string parent_;
  std::vector<DiskState> disks_;
  bool frozen_ = false, nbd_started_ = false, released_ = false;
  int agent_timeout_ms_ = 10000;
  friend class QemuDriver;
};

Status QemuView::CancelJob(QmpClient& qmp, const std::string& job) {
  auto st = qmp.Execute("block-job-cancel", {{"device", job}, {"force", true}});
  if (!st.ok() && st.status().message().find("not found") == std::string::npos &&
      st.status().message().find("No active block job") == std::string::npos) {
    return st.status();
  }
  for (int i = 0; i < 200; ++i) {  // the job goes away asynchronously
    OFFHOST_ASSIGN_OR_RETURN(json jobs, qmp.Execute("query-block-jobs"));
    bool present = false;
    for (const auto& j : jobs) present = present || j.value("device", "") == job;
    if (!present) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return Status::Unavailable("block job " + job + " did not end");
}

Status QemuView::DeleteNode(QmpClient& qmp, const std::string& node) {
  Status last;
  for (int i = 0; i < 40; ++i) {  // the copy-before-write filter lets go of it asynchronously
    last = qmp.Execute("blockdev-del", {{"node-name", node}}).status();
    if (last.ok() || last.message().find("not found") != std::string::npos ||
        last.message().find("Cannot find") != std::string::npos) {
      return Status::OK();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return last;
}

// The guest stays marked frozen until a thaw succeeds, so Release tries again.
Status QemuView::Thaw() {
  if (!frozen_) return Status::OK();
  Status st = agent_->Execute("guest-fsfreeze-thaw", agent_timeout_ms_).status();
  if (st.ok()) frozen_ = false;
  return st;
}

// Committed: the new bitmap is the chain's head, the parent is no longer needed. Not
// committed: the changes the new bitmap saw go back into the parent, which keeps recording,
// so the datastore's latest checkpoint stays valid.
Status QemuView::SettleBitmaps(DiskState& s, bool committed) {
  if (!s.bitmap_added) return Status::OK();
  const std::string& node = s.disk.node;
  bool parent_exists = !parent_.empty() && FindBitmap(s.disk, parent_) && s.parent_lost_reason.empty();
  if (committed) {
    if (parent_exists) {
      return qmp_->Execute("block-dirty-bitmap-remove", {{"node", node}, {"name", parent_}}).status();
    }
    return Status::OK();
  }
  if (s.use_parent) {
    OFFHOST_RETURN_IF_ERROR(qmp_->Execute("block-dirty-bitmap-merge",
                                          {{"node", node}, {"target", parent_}, {"bitmaps", {checkpoint}}})
                                .status());
    OFFHOST_RETURN_IF_ERROR(
        qmp_->Execute("block-dirty-bitmap-enable", {{"node", node}, {"name", parent_}}).status());
  }
  return qmp_->Execute("block-dirty-bitmap-remove", {{"node", node}, {"name", checkpoint}}).status();
}

Status QemuView::Freeze(const SnapshotRequest& req) {
  auto it = req.settings.find("qga");
  if (it == req.settings.end()) {
    consistency_reason = "no guest agent socket given (--qga)";
    return Status::OK();
  }
  if (auto t = req.settings.find("freeze-timeout"); t != req.settings.end()) {
    agent_timeout_ms_ = std::max(1, std::atoi(t->second.c_str())) * 1000;
  }
  auto agent = GuestAgentClient::Connect(it->second, agent_timeout_ms_);
  if (!agent.ok()) {
    consistency_reason = "guest agent did not answer: " + agent.status().message();
    return Status::OK();
  }
  agent_ = std::move(*agent);
  auto frozen = agent_->Execute("guest-fsfreeze-freeze", agent_timeout_ms_);
  if (!frozen.ok()) {
    // It may have frozen some file systems before hanging: thaw is tried on release anyway.
    frozen_ = true;
    Thaw().IgnoreError();
    consistency_reason = "guest agent freeze failed: " + frozen.status().message();
    return Status::OK();
  }
  frozen_ = true;
  consistency = "application";
  consistency_reason.clear();
  return Status::OK();
}

Status QemuView::PrepareDisk(DiskState& s, const SnapshotRequest& req, const std::string& work_dir) {
  const QemuDisk& d = s.disk;
  const json* parent = parent_.empty() ? nullptr : FindBitmap(d, parent_);
  if (parent && parent->value("inconsistent", false)) {
    // QEMU stopped without saving it (crash): it may miss changes, so it cannot be a base.
    OFFHOST_RETURN_IF_ERROR(
        qmp_->Execute("block-dirty-bitmap-remove", {{"node", d.node}, {"name", parent_}}).status());
    s.parent_lost_reason = "checkpoint " + parent_ + " on disk " + d.name +
                           " is inconsistent (QEMU or the host crashed)";
    parent = nullptr;
  }
  OFFHOST_RETURN_IF_ERROR(RemoveLeftoverBitmaps(*qmp_, d, parent_, parent ? parent_ : "", nullptr));
  s.use_parent = parent && !req.full;

  std::string tag = vm_name + "-" + d.name;
  s.scratch = work_dir + "/offhost-fleece-" + tag + ".qcow2";
  s.fleece = "offhost-fleece-" + d.name;
  s.job = "offhost-job-" + d.name;
  s.export_id = "offhost-export-" + d.name;
  std::filesystem::remove(s.scratch);
  OFFHOST_RETURN_IF_ERROR(RunProgram({"qemu-img", "create", "-q", "-f", "qcow2", s.scratch, std::to_string(d.size)}));
  OFFHOST_RETURN_IF_ERROR(qmp_->Execute("blockdev-add", {{"driver", "qcow2"},
                                                          {"node-name", s.fleece},
                                                          {"file", {{"driver", "file"}, {"filename", s.scratch}}},
                                                          {"backing", d.node}})
                              .status());
  s.fleece_added = true;
  return Status::OK();
}

Status QemuView::Build(const SnapshotRequest& req) {
  std::string work_dir = req.work_dir;
  checkpoint = NewCheckpointName();
  for (auto& s : disks_) OFFHOST_RETURN_IF_ERROR(PrepareDisk(s, req, work_dir));

  // One transaction: the point-in-time view and the checkpoint begin at the same instant.
  json actions = json::array();
  for (auto& s : disks_) {
    bool persistent = s.disk.format == "qcow2";
    actions.push_back({{"type", "block-dirty-bitmap-add"},
                       {"data", {{"node", s.disk.node}, {"name", checkpoint}, {"persistent", persistent}}}});
    if (s.use_parent) {
      actions.push_back({{"type", "block-dirty-bitmap-disable"},
                         {"data", {{"node", s.disk.node}, {"name", parent_}}}});
    }
    actions.push_back({{"type", "blockdev-backup"},
                       {"data", {{"job-id", s.job}, {"device", s.disk.node}, {"target", s.fleece},
                                 {"sync", "none"}, {"filter-node-name", "offhost-cbw-" + s.disk.name}}}});
  }
  OFFHOST_RETURN_IF_ERROR(Freeze(req));
  Status tx = qmp_->Execute("transaction", {{"actions", actions}}).status();
  Status thawed = Thaw();  // the guest is frozen only for the transaction
  OFFHOST_RETURN_IF_ERROR(tx);
  if (!thawed.ok()) consistency_reason = "thaw reported: " + thawed.message();
  for (auto& s : disks_) s.bitmap_added = s.job_started = true;

  std::string sock = work_dir + "/offhost-nbd-" + std::to_string(::getpid()) + ".sock";
  std::filesystem::remove(sock);
  json addr = {{"addr", {{"type", "unix"}, {"data", {{"path", sock}}}}}};
  auto started = qmp_->Execute("nbd-server-start", addr);
  if (!started.ok() && started.status().message().find("already running") != std::string::npos) {
    // A server with no export at all is what a proxy that died after starting it leaves.
    auto exports = qmp_->Execute("query-block-exports");
    if (exports.ok() && exports->empty()) {
      qmp_->Execute("nbd-server-stop").status().IgnoreError();
      started = qmp_->Execute("nbd-server-start", addr);
    }
  }
  if (!started.ok()) {
    return started.status().WithContext("start QEMU's NBD server (is another tool's NBD export running in this VM?)");
  }
  nbd_started_ = true;
  for (auto& s : disks_) {
    json args = {{"type", "nbd"}, {"id", s.export_id}, {"node-name", s.fleece},
                 {"name", s.disk.name}, {"writable", false}};
    if (s.use_parent) args["bitmaps"] = {parent_};
    OFFHOST_RETURN_IF_ERROR(qmp_->Execute("block-export-add", args).status());
    s.exported = true;
    ViewDisk v;
    v.name = s.disk.name;
    v.uri = "nbd+unix:///" + s.disk.name + "?socket=" + sock;
    v.size = s.disk.size;
    v.identity = s.disk.identity;
    if (s.use_parent) {
      v.dirty_bitmap = "qemu:dirty-bitmap:" + parent_;
    } else if (req.full) {
      v.full_reason = "full backup requested";
    } else if (parent_.empty()) {
      v.full_reason = "no previous backup of this VM";
    } else if (!s.parent_lost_reason.empty()) {
      v.full_reason = s.parent_lost_reason;
    } else {
      v.full_reason = "checkpoint " + parent_ + " is not on disk " + s.disk.name +
                      " (lost after a VM restart, a host crash, or the disk is new)";
    }
    disks.push_back(v);
  }
  return Status::OK();
}

class QemuDriver final : public SnapshotDriver {
 public:
  Result<VmIdentity> Identify(const SnapshotRequest& req) override {
    // QEMU serves one QMP client at a time: this connection is closed before Take().
    OFFHOST_ASSIGN_OR_RETURN(auto qmp, ConnectQmp(req));
    return IdentifyWith(*qmp, req);
  }

  Result<std::unique_ptr<PointInTimeView>> Take(const SnapshotRequest& req) override {
    OFFHOST_ASSIGN_OR_RETURN(auto qmp, ConnectQmp(req));
    OFFHOST_RETURN_IF_ERROR(RemoveLeftovers(*qmp));
    OFFHOST_ASSIGN_OR_RETURN(VmIdentity id, IdentifyWith(*qmp, req));
    auto view = std::make_unique<QemuView>(std::move(qmp), req.settings.at("qmp"),
                                           req.parent_checkpoint);
    view->vm_name = id.name;
    view->vm_uuid = id.uuid;
    OFFHOST_RETURN_IF_ERROR(ListDisks(*view));
    OFFHOST_RETURN_IF_ERROR(ApplySelection(*view, req));
    if (view->disks_.empty()) {
      return Status::NotFound("QEMU VM " + id.name + " has no disk offhost can back up");
    }
    // On failure ~QemuView releases whatever was created.
    OFFHOST_RETURN_IF_ERROR(view->Build(req));
    view->Disconnect();
    return std::unique_ptr<PointInTimeView>(std::move(view));
  }

  // query-status and query-block on the QMP socket; nothing is added to the VM.
  Result<VmDescription> Describe(const SnapshotRequest& req) override {
    OFFHOST_ASSIGN_OR_RETURN(auto qmp, ConnectQmp(req));
    OFFHOST_ASSIGN_OR_RETURN(VmIdentity id, IdentifyWith(*qmp, req));
    VmDescription out;
    out.name = id.name;
    out.uuid = id.uuid;
    OFFHOST_ASSIGN_OR_RETURN(json status, qmp->Execute("query-status"));
    std::string state = status.value("status", "");
    out.power_state = state == "running" ? "running" : state == "paused" ? "paused" : "";
    OFFHOST_ASSIGN_OR_RETURN(json devices, qmp->Execute("query-block"));
    std::vector<std::string> names;
    std::vector<DiskInfo> disks;
    for (const auto& dev : devices) {
      if (!dev.contains("inserted")) continue;  // empty removable drive
      const json& ins = dev["inserted"];
      DiskInfo d;
      d.name = DeviceName(dev);
      if (ins.value("ro", false)) {
        out.excluded.push_back({d.name, "read-only medium (CD-ROM or image); not backed up"});
        continue;
      }
      if (d.name.empty() || ins.value("node-name", "").empty()) continue;
      d.format = ins.value("drv", "");
      d.size = ins["image"].value("virtual-size", uint64_t{0});
      d.source = ins.value("file", ins["image"].value("filename", ""));
      QemuDisk q;
      q.bitmaps = ins.value("dirty-bitmaps", json::array());
      const json* parent =
          req.parent_checkpoint.empty() ? nullptr : FindBitmap(q, req.parent_checkpoint);
      if (req.parent_checkpoint.empty()) {
        d.full_reason = "no previous backup of this VM";
      } else if (parent == nullptr) {
        d.full_reason = "checkpoint " + req.parent_checkpoint + " is not on disk " + d.name +
                        " (lost after a VM restart, a host crash, or the disk is new)";
      } else if (parent->value("inconsistent", false)) {
        d.full_reason = "checkpoint " + req.parent_checkpoint + " on disk " + d.name +
                        " is inconsistent (QEMU or the host crashed)";
      }
      names.push_back(d.name);
      disks.push_back(std::move(d));
    }
    OFFHOST_ASSIGN_OR_RETURN(auto selected, SelectDisks(req, names, id.name));
    for (auto& d : disks) {
      if (std::find(selected.begin(), selected.end(), d.name) != selected.end()) {
        out.disks.push_back(std::move(d));
      } else {
        out.excluded.push_back({d.name, "not selected (--disk)"});
      }
    }
    return out;
  }

  // What a proxy killed mid-backup left in the VM: exports, jobs and fleecing nodes, then the
  // checkpoints (bitmaps) of ours other than the parent, which is left recording.
  Result<std::vector<std::string>> ReleaseLeftovers(const SnapshotRequest& req) override {
    OFFHOST_ASSIGN_OR_RETURN(auto qmp, ConnectQmp(req));
    std::vector<std::string> released;
    OFFHOST_RETURN_IF_ERROR(RemoveLeftovers(*qmp, &released));
    OFFHOST_ASSIGN_OR_RETURN(json devices, qmp->Execute("query-block"));
    for (const auto& dev : devices) {
      if (!dev.contains("inserted")) continue;
      const json& ins = dev["inserted"];
      QemuDisk d;
      d.name = DeviceName(dev);
      d.node = ins.value("node-name", "");
      d.bitmaps = ins.value("dirty-bitmaps", json::array());
      if (d.node.empty()) continue;
      OFFHOST_RETURN_IF_ERROR(RemoveLeftoverBitmaps(*qmp, d, req.parent_checkpoint, req.parent_checkpoint,
                                                    &released));
    }
    // The overlays' files, by the name Build gives them (QEMU names a node with a backing
    // node by a json: filename, so the node does not tell its file).
    OFFHOST_ASSIGN_OR_RETURN(VmIdentity id, IdentifyWith(*qmp, req));
    const std::string prefix = "offhost-fleece-" + id.name + "-";
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(req.work_dir, ec)) {
      std::string file = entry.path().filename().string();
      if (file.starts_with(prefix) && std::filesystem::remove(entry.path(), ec)) {
        released.push_back("scratch file " + entry.path().string());
      }
    }
    return released;
  }

 private:
  static Result<VmIdentity> IdentifyWith(QmpClient& qmp, const SnapshotRequest& req) {
    VmIdentity id;
    OFFHOST_ASSIGN_OR_RETURN(json name, qmp.Execute("query-name"));
    OFFHOST_ASSIGN_OR_RETURN(json uuid, qmp.Execute("query-uuid"));
    id.name = req.vm.empty() ? name.value("name", "") : req.vm;
    id.uuid = uuid.value("UUID", "");
    if (id.uuid == "00000000-0000-0000-0000-000000000000") id.uuid.clear();
    if (id.name.empty()) {
      return Status::InvalidArgument("the QEMU process has no -name; give the VM's name with --vm NAME");
    }
    return id;
  }

  static Result<std::unique_ptr<QmpClient>> ConnectQmp(const SnapshotRequest& req) {
    auto it = req.settings.find("qmp");
    if (it == req.settings.end() || it->second.empty()) {
      return Status::InvalidArgument("the qemu driver needs --qmp SOCKET (QEMU's -qmp unix:PATH,server=on)");
    }
    return QmpClient::Connect(it->second);
  }

  // Exports, jobs and nodes named offhost-* are left by a proxy that died mid-backup.
  static Status RemoveLeftovers(QmpClient& qmp, std::vector<std::string>* released = nullptr) {
    auto note = [&](const std::string& what) {
      if (released) released->push_back(what);
    };
    OFFHOST_ASSIGN_OR_RETURN(json exports, qmp.Execute("query-block-exports"));
    bool had_export = false;
    for (const auto& e : exports) {
      if (!Ours(e.value("id", ""))) continue;
      had_export = true;
      qmp.Execute("block-export-del", {{"id", e.value("id", "")}, {"mode", "hard"}}).status().IgnoreError();
      note("NBD export " + e.value("id", ""));
    }
    if (had_export && qmp.Execute("nbd-server-stop").ok()) note("QEMU's NBD server");
    OFFHOST_ASSIGN_OR_RETURN(json jobs, qmp.Execute("query-block-jobs"));
    for (const auto& j : jobs) {
      if (!Ours(j.value("device", ""))) continue;
      OFFHOST_RETURN_IF_ERROR(QemuView::CancelJob(qmp, j.value("device", "")));
      note("block job " + j.value("device", ""));
    }
    OFFHOST_ASSIGN_OR_RETURN(json nodes, qmp.Execute("query-named-block-nodes", {{"flat", true}}));
    for (const auto& n : nodes) {
      std::string name = n.value("node-name", "");
      if (name.starts_with("offhost-fleece-")) {
        OFFHOST_RETURN_IF_ERROR(QemuView::DeleteNode(qmp, name));
        std::string file = n.value("file", "");
        if (!file.empty() && !file.starts_with("json:")) std::filesystem::remove(file);
        note("fleecing node " + name);
      }
    }
    return Status::OK();
  }

  static Status ApplySelection(QemuView& view, const SnapshotRequest& req) {
    std::vector<std::string> names;
    for (const auto& s : view.disks_) names.push_back(s.disk.name);
    OFFHOST_ASSIGN_OR_RETURN(auto selected, SelectDisks(req, names, view.vm_name));
    std::vector<DiskState> kept;
    for (auto& s : view.disks_) {
      if (std::find(selected.begin(), selected.end(), s.disk.name) != selected.end()) {
        kept.push_back(std::move(s));
      } else {
        view.excluded.push_back({s.disk.name, "not selected (--disk)"});
      }
    }
    view.disks_ = std::move(kept);
    return Status::OK();
  }

  static Status ListDisks(QemuView& view) {
    OFFHOST_ASSIGN_OR_RETURN(json devices, view.qmp_->Execute("query-block"));
    json config = {{"name", view.vm_name}, {"uuid", view.vm_uuid}, {"block", devices}};
    if (auto version = view.qmp_->Execute("query-version"); version.ok()) config["qemu"] = *version;
    view.vm_config = config.dump(2);
    for (const auto& dev : devices) {
      if (!dev.contains("inserted")) continue;  // empty removable drive
      const json& ins = dev["inserted"];
      QemuDisk d;
      d.name = DeviceName(dev);
      d.node = ins.value("node-name", "");
      d.format = ins.value("drv", "");
      d.size = ins["image"].value("virtual-size", uint64_t{0});
      d.identity = ins.value("file", ins["image"].value("filename", ""));
      d.bitmaps = ins.value("dirty-bitmaps", json::array());
      if (ins.value("ro", false)) {
        view.excluded.push_back({d.name, "read-only medium (CD-ROM or image); not backed up"});
        continue;
      }
      if (d.node.empty() || d.name.empty()) continue;
      DiskState s;
      s.disk = d;
      view.disks_.push_back(std::move(s));
    }
    return Status::OK();
  }
};

OFFHOST_REGISTER_DRIVER("qemu", "a running QEMU process through its QMP socket (--qmp SOCKET)",
                        QemuDriver);

}  // namespace
}  // namespace offhost::snapshot_drivers
