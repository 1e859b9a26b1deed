// offhost backup --datastore DIR [--driver nbd|iscsi|image|libvirt|qemu] ... [--full] [--json]
//   nbd:     --vm NAME --disk NAME=URI [--disk ...] [--bitmap CONTEXT]
//   iscsi:   --vm NAME --disk NAME=iscsi://PORTAL/IQN/LUN[#VG/LV] [...] [--chap-secret-file F]
//   image:   --vm NAME --disk NAME=PATH [...] [--bitmap NAME]
//   libvirt: --connect URI --domain NAME|UUID [--vm NAME]
//   qemu:    --qmp SOCKET [--qga SOCKET] --vm NAME
// offhost backup [--server ADDR] --vm NAME [--disk NAME ...] [--full] [--no-catalog] [--json]
//   against offhostd: a VM of its inventory, as a job (StartBackup, then WatchJob)
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "iscsi_options.h"
#include "job_watch.h"
#include "offhost/proxy/catalog.h"
#include "offhost/proxy/vm_backup.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"
#include "offhost/v1/backup.grpc.pb.h"

namespace offhost::cli {
namespace {

std::atomic<bool> g_cancel{false};

struct BackupCliOptions {
  std::string datastore;
  std::string driver = "nbd";
  std::string vm;
  std::vector<std::string> disks;
  std::string bitmap, connect, domain, qmp, qga, nbd_address, scratch_dir;
  int freeze_timeout = 10;
  int nbd_timeout = 300;
  bool full = false;
  int threads = 0;
  bool json = false;
  bool no_catalog = false;
  IscsiCliOptions iscsi;
  DaemonOptions daemon;
};

// Drivers whose --disk names its source (NAME=URI or NAME=PATH) rather than picking one of
// the hypervisor's disks.
bool DiskSpecsNameSources(const std::string& driver) {
  return driver == "nbd" || driver == "iscsi" || driver == "image";
}

Result<proxy::VmBackupRequest> MakeRequest(const BackupCliOptions& o) {
  proxy::VmBackupRequest req;
  req.driver = o.driver;
  req.vm_name = o.vm;
  req.snapshot.full = o.full;
  req.snapshot.vm = !o.domain.empty() ? o.domain : o.vm;
  auto& s = req.snapshot.settings;
  for (const auto& spec : o.disks) {
    if (!DiskSpecsNameSources(o.driver) && spec.find('=') == std::string::npos) {
      // Hypervisor drivers: --disk NAME limits the backup to the named disks.
      s["only." + spec] = "1";
      continue;
    }
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || spec.substr(0, eq).find("://") != std::string::npos) {
      return Status::InvalidArgument(
          "--disk '" + snapshot_drivers::MaskUri(spec) +
          "' must be NAME=SOURCE, e.g. --disk vda=nbd+unix:///vda?socket=/run/vda.sock, "
          "--disk sda=iscsi://10.0.0.5/iqn.2001-05.com.example:lun0/1 or "
          "--disk vda=/var/lib/libvirt/images/vm.qcow2");
    }
    std::string name = spec.substr(0, eq);
    OFFHOST_RETURN_IF_ERROR(storage::ValidateName("disk", name));
    if (s.count("disk." + name)) return Status::InvalidArgument("--disk " + name + " given twice");
    s["disk." + name] = spec.substr(eq + 1);
  }
  if (!o.bitmap.empty()) s["bitmap"] = o.bitmap;
  if (!o.connect.empty()) s["connect"] = o.connect;
  if (!o.qmp.empty()) s["qmp"] = o.qmp;
  if (!o.qga.empty()) s["qga"] = o.qga;
  if (!o.nbd_address.empty()) s["nbd-address"] = o.nbd_address;
  if (!o.scratch_dir.empty()) s["scratch-dir"] = o.scratch_dir;
  s["freeze-timeout"] = std::to_string(o.freeze_timeout);
  s["nbd-timeout"] = std::to_string(o.nbd_timeout);
  if (o.driver == "iscsi") {
    OFFHOST_ASSIGN_OR_RETURN(auto iscsi, IscsiSettings(o.iscsi));
    s.insert(iscsi.begin(), iscsi.end());
  }
  return req;
}

std::string DedupeText(const storage::SnapshotRecord& s) {
  uint64_t chunks = 0, fresh = 0;
  for (const auto& d : s.disks) {
    chunks += d.chunks;
    fresh += d.new_chunks;
  }
  if (chunks == 0) return "no data chunks";
  if (fresh == 0) return "dedupe all (" + std::to_string(chunks) + " chunks already stored)";
  char buf[64];
  std::snprintf(buf, sizeof buf, "dedupe %.2fx",
                static_cast<double>(chunks) / static_cast<double>(fresh));
  return buf;
}

std::string KindText(const storage::DiskRecord& d) {
  return d.incremental ? "incremental" : "full (" + d.full_reason + ")";
}

nlohmann::json ToJson(const proxy::VmBackupResult& r) {
  const auto& s = r.backup.snapshot;
  nlohmann::json j = {{"vm", s.vm},
                      {"snapshot", s.id},
                      {"vm_uuid", s.meta.vm_uuid},
                      {"driver", s.meta.driver},
                      {"consistency", s.meta.consistency},
                      {"consistency_reason", s.meta.consistency_reason},
                      {"checkpoint", s.meta.checkpoint},
                      {"parent", s.meta.parent},
                      {"logical_bytes", s.logical_bytes()},
                      {"bytes_read", s.bytes_read()},
                      {"new_bytes", s.new_bytes()},
                      {"seconds", r.backup.seconds},
                      {"disks", nlohmann::json::array()},
                      {"excluded", nlohmann::json::array()}};
  for (const auto& d : s.disks) {
    j["disks"].push_back({{"name", d.name},
                          {"size", d.size},
                          {"bytes_read", d.bytes_read},
                          {"new_bytes", d.new_bytes},
                          {"chunks", d.chunks},
                          {"new_chunks", d.new_chunks},
                          {"zero_bytes", d.zero_bytes},
                          {"unallocated_bytes", d.unallocated_bytes},
                          {"incremental", d.incremental},
                          {"full_reason", d.full_reason},
                          {"dirty_bytes", d.dirty_bytes},
                          {"reused_bytes", d.reused_bytes}});
  }
  for (const auto& e : r.excluded)
    j["excluded"].push_back({{"name", e.name}, {"reason", e.reason}});
  if (!r.release_warning.empty()) j["release_warning"] = r.release_warning;
  j["phases"] = nlohmann::json::object();
  for (const auto& [name, secs] : r.phases) j["phases"][name] = secs;
  j["phases"]["of_backup_catalog"] = r.backup.catalog.seconds;
  j["phases"]["of_backup_commit"] = r.backup.commit_seconds;
  const auto& c = r.backup.catalog;
  j["catalog"] = {{"files", c.files},
                  {"directories", c.directories},
                  {"skipped_names", c.skipped_names},
                  {"unreadable_folders", c.unreadable_dirs},
                  {"not_indexed", c.not_indexed},
                  {"new_bytes", c.new_bytes},
                  {"seconds", c.seconds}};
  return j;
}

void PrintSummary(const proxy::VmBackupResult& r) {
  const auto& s = r.backup.snapshot;
  double secs = r.backup.seconds > 0 ? r.backup.seconds : 1e-9;
  std::cout << "backup " << s.vm << "@" << s.id << ": " << HumanBytes(s.logical_bytes())
            << " logical, " << HumanBytes(s.bytes_read()) << " read, " << HumanBytes(s.new_bytes())
            << " new in datastore, " << DedupeText(s) << ", "
            << HumanRate(static_cast<double>(s.logical_bytes()) / secs) << " in "
            << HumanDuration(r.backup.seconds) << "\n";
  bool driver_backup = s.meta.driver != "nbd" || s.disks.size() > 1 || s.disks[0].incremental ||
                       !s.meta.parent.empty();
  if (driver_backup) {
    std::cout << "  consistency: " << s.meta.consistency
              << (s.meta.consistency_reason.empty() ? "" : " (" + s.meta.consistency_reason + ")")
              << "\n";
    for (const auto& d : s.disks) {
      std::cout << "  disk " << d.name << ": " << KindText(d) << ", read "
                << HumanBytes(d.bytes_read) << " of " << HumanBytes(d.size) << "\n";
    }
  }
  for (const auto& e : r.excluded) {
    std::cout << "  NOT INCLUDED: disk " << e.name << ": " << e.reason << "\n";
  }
  const auto& c = r.backup.catalog;
  if (c.files + c.directories > 0) {
    std::cout << "  catalog: " << c.files << " files in " << c.directories << " folders, "
              << HumanBytes(c.new_bytes) << " added to the index (" << HumanDuration(c.seconds)
              << ")\n";
  }
  // What find will not show: say so, or a missing file looks like one the guest never had.
  if (c.unreadable_dirs > 0) {
    std::cout << "  not cataloged: the entries of " << c.unreadable_dirs
              << " folders (damaged, or more than " << proxy::kCatalogMaxDepth
              << " levels deep); ls and restore-file still read them\n";
  }
  if (c.skipped_names > 0) {
    std::cout << "  not cataloged: " << c.skipped_names
              << " entries whose names cannot be stored (damaged or hostile)\n";
  }
  for (const auto& v : c.not_indexed) std::cout << "  not indexed: " << Printable(v) << "\n";
  if (!r.release_warning.empty()) {
    std::cerr << "offhost: warning: releasing the snapshot: " << r.release_warning << "\n";
  }
}

int BackupLocal(const BackupCliOptions& o) {
  auto req = MakeRequest(o);
  if (!req.ok()) return ReportError(req.status());
  auto ds = storage::Datastore::Open(o.datastore, /*for_writing=*/true);
  if (!ds.ok()) return ReportError(ds.status());

  // Ctrl-C and SIGTERM cancel the backup; the snapshot is still released.
  std::signal(SIGINT, [](int) { g_cancel = true; });
  std::signal(SIGTERM, [](int) { g_cancel = true; });
  proxy::BackupCounters counters;
  req->options.threads = o.threads;
  req->options.catalog = !o.no_catalog;
  req->options.counters = &counters;
  req->options.cancel = &g_cancel;
  Result<proxy::VmBackupResult> result = Status::Cancelled("not run");
  {
    ProgressBar bar("backup", [&] {
      return std::make_pair(counters.done_bytes.load(), counters.total_bytes.load());
    });
    result = proxy::BackupVm(**ds, std::move(*req));
  }
  if (!result.ok()) {
    std::cerr << "offhost: the backup failed; no snapshot was created and the datastore is "
                 "unchanged apart from unreferenced chunks\n";
    return ReportError(result.status());
  }
  if (o.json) {
    std::cout << ToJson(*result).dump(2) << "\n";
  } else {
    PrintSummary(*result);
  }
  return kExitOk;
}

// The daemon's answer in the local result's shape, so both modes print the same summary.
proxy::VmBackupResult FromProto(const v1::Job& job) {
  const auto& r = job.backup_result();
  proxy::VmBackupResult out;
  out.backup.snapshot = cli::FromProto(r.snapshot());
  // The job's times: the snapshot's are whole seconds.
  out.backup.seconds = static_cast<double>(job.end_time().seconds() - job.start_time().seconds()) +
                       (job.end_time().nanos() - job.start_time().nanos()) / 1e9;
  for (const auto& e : r.excluded_disks()) out.excluded.push_back({e.name(), e.reason()});
  out.release_warning = r.release_warning();
  for (const auto& p : r.phases()) {
    std::string name = v1::JobPhase_Name(p.phase()).substr(sizeof("JOB_PHASE_") - 1);
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    out.phases.emplace_back(
        name, static_cast<double>(p.duration().seconds()) + p.duration().nanos() / 1e9);
  }
  auto& c = out.backup.catalog;
  c.files = r.catalog().file_count();
  c.directories = r.catalog().directory_count();
  c.skipped_names = r.catalog().skipped_name_count();
  c.unreadable_dirs = r.catalog().unreadable_folder_count();
  c.not_indexed.assign(r.catalog().not_indexed().begin(), r.catalog().not_indexed().end());
  c.new_bytes = r.catalog().new_bytes();
  c.seconds =
      static_cast<double>(r.catalog().duration().seconds()) + r.catalog().duration().nanos() / 1e9;
  return out;
}

// The daemon knows its VMs' drivers and sources: only the VM and the choices are asked for.
Result<v1::StartBackupRequest> MakeDaemonRequest(const BackupCliOptions& o) {
  if (o.vm.empty()) return Status::InvalidArgument("--vm NAME: the VM of offhostd's inventory");
  OFFHOST_RETURN_IF_ERROR(storage::ValidateName("VM", o.vm));
  if (o.driver != "nbd" || !o.connect.empty() || !o.domain.empty() || !o.qmp.empty() ||
      !o.bitmap.empty()) {
    return Status::InvalidArgument(
        "against offhostd the VM's driver and sources come from its "
        "configuration: --driver, --connect, --domain, --qmp and "
        "--bitmap need --datastore DIR (local mode)");
  }
  v1::StartBackupRequest req;
  auto* spec = req.mutable_spec();
  spec->set_vm("hosts/-/vms/" + o.vm);
  spec->set_full(o.full);
  spec->set_skip_catalog(o.no_catalog);
  for (const auto& d : o.disks) {
    if (d.find('=') != std::string::npos) {
      return Status::InvalidArgument("--disk " + snapshot_drivers::MaskUri(d) +
                                     ": against offhostd --disk names one of the VM's disks");
    }
    spec->add_disks(d);
  }
  return req;
}

int BackupDaemon(const BackupCliOptions& o) {
  auto req = MakeDaemonRequest(o);
  if (!req.ok()) return ReportError(req.status());
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  auto stub = v1::BackupService::NewStub((*client)->channel());
  v1::Job job;
  auto ctx = (*client)->Context();
  grpc::Status st = stub->StartBackup(ctx.get(), *req, &job);
  if (!st.ok()) return ReportRpcError(st, *ctx, **client);
  int exit = kExitOk;
  auto done = WatchToEnd(**client, job.name(), "backup", &exit);
  if (!done.ok()) return exit;
  if (done->state() != v1::JOB_STATE_SUCCEEDED) {
    std::cerr << "offhost: the backup failed; no snapshot was created\n";
    return ReportJobFailure(*done);
  }
  proxy::VmBackupResult result = FromProto(*done);
  if (o.json) {
    std::cout << ToJson(result).dump(2) << "\n";
  } else {
    PrintSummary(result);
  }
  return kExitOk;
}

int RunBackupCommand(const BackupCliOptions& o) {
  auto daemon = UseDaemon(o.daemon, o.datastore);
  if (!daemon.ok()) return ReportError(daemon.status());
  return *daemon ? BackupDaemon(o) : BackupLocal(o);
}

}  // namespace

void AddBackupCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<BackupCliOptions>();
  auto* cmd = app.add_subcommand("backup", "Back up a VM's disks into a datastore");
  cmd->add_option("--datastore", o->datastore, "Datastore directory (local mode)");
  AddDaemonOptions(cmd, &o->daemon);
  cmd->add_option("--driver", o->driver,
                  "Snapshot driver: nbd (default), iscsi, image, libvirt, qemu");
  cmd->add_option("--vm", o->vm, "VM name in the datastore (default: the hypervisor's name)");
  cmd->add_option("--disk", o->disks,
                  "nbd driver: NAME=URI of a read-only export (nbd://, nbds://, nbd+unix://); "
                  "iscsi driver: NAME=iscsi://[USER@]PORTAL/TARGET-IQN/LUN[#VG/LV]; "
                  "image driver: NAME=PATH of a disk image (raw, qcow2, vmdk, vhd, vhdx); "
                  "libvirt/qemu drivers and offhostd: NAME of a disk to back up (default: all). "
                  "Repeatable");
  cmd->add_option("--bitmap", o->bitmap,
                  "nbd driver: dirty-bitmap context of the exports, e.g. qemu:dirty-bitmap:bm0; "
                  "image driver: a persistent bitmap of the qcow2 images");
  cmd->add_option("--connect", o->connect, "libvirt driver: connection URI, e.g. qemu:///system");
  cmd->add_option("--domain", o->domain, "libvirt driver: domain name or UUID");
  cmd->add_option("--nbd-address", o->nbd_address,
                  "libvirt driver: the hypervisor's backup-network address[:port] for the NBD "
                  "export (required for remote hosts; default a local unix socket)");
  cmd->add_option("--scratch-dir", o->scratch_dir,
                  "libvirt driver: directory on the hypervisor for scratch files "
                  "(default: the datastore's tmp locally, /var/tmp on remote hosts)");
  cmd->add_option("--qmp", o->qmp, "qemu driver: the QEMU process's QMP unix socket");
  cmd->add_option("--qga", o->qga, "qemu driver: the guest agent's unix socket (for quiescing)");
  cmd->add_option("--freeze-timeout", o->freeze_timeout,
                  "Seconds to wait for the guest agent to freeze file systems (default 10)");
  cmd->add_option("--nbd-timeout", o->nbd_timeout,
                  "Seconds a read of an NBD export may wait for the server before the backup "
                  "fails (default 300; 0 waits forever)");
  AddIscsiOptions(cmd, &o->iscsi);
  cmd->add_flag("--full", o->full, "Read every disk in full even when an incremental is possible");
  cmd->add_option("--threads", o->threads, "Hashing/compression threads (default: one per core)");
  cmd->add_flag("--no-catalog", o->no_catalog,
                "Do not catalog the guest's files (no 'offhost find' for this backup)");
  cmd->add_flag("--json", o->json, "Print the result as JSON");
  cmd->callback([run, o] { *run = [o] { return RunBackupCommand(*o); }; });
}

}  // namespace offhost::cli
