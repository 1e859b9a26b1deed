#include "backup_job.h"

#include <google/protobuf/util/time_util.h>

#include "datastores.h"
#include "inventory.h"
#include "jobs.h"
#include "names.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"
#include "snapshots.h"
#include "status_map.h"

namespace offhost::grpcapi {
namespace {

using google::protobuf::util::TimeUtil;

// Drivers whose disks are named in the settings ("disk.NAME" = source) rather than found on
// the hypervisor.
bool DisksInSettings(const std::string& driver) {
  return driver == "nbd" || driver == "iscsi" || driver == "image";
}

grpc::Status ResolveInventoryVm(const ServiceContext& context, grpc::ServerContext* ctx,
                                const std::string& name, BackupPlan* plan, const HostConfig** host,
                                const VmConfig** vm) {
  std::string host_name, vm_name;
  if (!SplitVmName(name, &host_name, &vm_name)) {
    return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_NAME",
                "spec.vm \"" + name + "\" is not \"hosts/{host}/vms/{vm}\" (host may be \"-\")");
  }
  *vm = FindVm(context, vm_name);
  if (*vm == nullptr || (host_name != kAny && (*vm)->host != host_name)) {
    if (host_name != kAny && FindHost(context, host_name) == nullptr) {
      return Fail(ctx, grpc::StatusCode::NOT_FOUND, "HOST_NOT_FOUND",
                  "no host is named \"" + host_name + "\" in offhostd's configuration");
    }
    return Fail(ctx, grpc::StatusCode::NOT_FOUND, "VM_NOT_FOUND",
                "no VM " + name + " in offhostd's configuration ([[vm]])");
  }
  *host = FindHost(context, (*vm)->host);
  plan->host = (*host)->name;
  plan->vm_id = (*vm)->name;
  plan->request.driver = (*host)->driver;
  plan->request.snapshot.settings = (*host)->settings;
  for (const auto& [k, v] : (*vm)->settings) plan->request.snapshot.settings[k] = v;
  return grpc::Status::OK;
}

// Why an ad-hoc source URI may not be opened, or "" when it may. The daemon runs as root:
// an API caller must not make it read local files (tls-psk-file=, tls-certificates=), talk to
// local sockets (other backups' exports) or carry secrets in a request that jobs keep.
std::string AdHocUriProblem(const std::string& uri) {
  if (!uri.starts_with("nbd://") && !uri.starts_with("nbds://")) {
    return "ad-hoc sources must be network exports (nbd:// or nbds://), not " +
           snapshot_drivers::MaskUri(uri);
  }
  if (snapshot_drivers::MaskUri(uri) != uri) {
    return "the URI holds a password; configure the source as a VM of the host instead";
  }
  if (uri.find('?') != std::string::npos) {
    return "query parameters (TLS files, sockets) are not allowed in ad-hoc URIs; configure "
           "the source as a VM of the host instead";
  }
  return "";
}

// Ad-hoc sources: only the nbd driver's settings are taken so far.
grpc::Status ResolveAdHoc(const ServiceContext& context, grpc::ServerContext* ctx,
                          const v1::AdHocSource& source, BackupPlan* plan,
                          const HostConfig** host) {
  constexpr std::string_view kHosts = "hosts/";
  std::string name = source.host().starts_with(kHosts) ? source.host().substr(kHosts.size()) : "";
  *host = FindHost(context, name);
  if (*host == nullptr) {
    return Fail(ctx, grpc::StatusCode::NOT_FOUND, "HOST_NOT_FOUND",
                "spec.ad_hoc.host \"" + source.host() + "\" is not a configured host");
  }
  if (!(*host)->ad_hoc_sources_allowed) {
    return Fail(ctx, grpc::StatusCode::PERMISSION_DENIED, "SOURCE_NOT_ALLOWED",
                "host " + name + " does not take ad-hoc sources (ad_hoc_sources_allowed)");
  }
  if (Status st = storage::ValidateName("spec.ad_hoc.vm_id", source.vm_id()); !st.ok()) {
    return ToGrpc(ctx, st, "");
  }
  const VmConfig* other = FindVm(context, source.vm_id());
  if (other != nullptr && other->host != name) {
    return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                "vm_id " + source.vm_id() + " is a VM of host " + other->host);
  }
  if ((*host)->driver != "nbd" || !source.settings().has_nbd()) {
    return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                "ad-hoc sources take nbd settings on an nbd host only, so far");
  }
  plan->host = name;
  plan->vm_id = source.vm_id();
  plan->request.driver = "nbd";
  plan->request.snapshot.settings = (*host)->settings;
  for (const v1::NbdDisk& d : source.settings().nbd().disks()) {
    if (Status st = storage::ValidateName("disk", d.name()); !st.ok()) return ToGrpc(ctx, st, "");
    if (std::string why = AdHocUriProblem(d.uri()); !why.empty()) {
      return Fail(ctx, grpc::StatusCode::PERMISSION_DENIED, "SOURCE_NOT_ALLOWED",
                  "disk " + d.name() + ": " + why);
    }
    plan->request.snapshot.settings["disk." + d.name()] = d.uri();
  }
  if (!source.settings().nbd().bitmap().empty()) {
    plan->request.snapshot.settings["bitmap"] = source.settings().nbd().bitmap();
  }
  return grpc::Status::OK;
}

// spec.disks: a subset of the configured disks, or the hypervisor driver's "only.NAME".
grpc::Status SelectDisks(grpc::ServerContext* ctx, const v1::BackupSpec& spec, BackupPlan* plan) {
  if (spec.disks().empty()) return grpc::Status::OK;
  auto& settings = plan->request.snapshot.settings;
  if (!DisksInSettings(plan->request.driver)) {
    for (const std::string& d : spec.disks()) settings["only." + d] = "1";
    return grpc::Status::OK;
  }
  std::string have;
  for (const auto& [k, v] : settings) {
    if (k.starts_with("disk.")) have += (have.empty() ? "" : ", ") + k.substr(5);
  }
  for (const std::string& d : spec.disks()) {
    if (!settings.contains("disk." + d)) {
      return Fail(ctx, grpc::StatusCode::NOT_FOUND, "DISK_NOT_FOUND",
                  "VM " + plan->vm_id + " has no disk " + d + "; it has: " + have, {{"disk", d}});
    }
  }
  std::erase_if(settings, [&](const auto& kv) {
    return kv.first.starts_with("disk.") && std::find(spec.disks().begin(), spec.disks().end(),
                                                      kv.first.substr(5)) == spec.disks().end();
  });
  return grpc::Status::OK;
}

// The datastore asked for, else the VM's, else the host's, else the only one configured.
grpc::Status ChooseDatastore(const ServiceContext& context, grpc::ServerContext* ctx,
                             const HostConfig& host, const VmConfig* vm, BackupPlan* plan) {
  std::string name;
  if (!plan->spec.datastore().empty()) {
    OFFHOST_RPC_ASSIGN_OR_RETURN(name, ParseDatastoreName(plan->spec.datastore(), "datastore"), ctx,
                                 "");
  } else if (name = DefaultDatastore(context, host, vm); name.empty()) {
    return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                "spec.datastore is empty and the VM has no default datastore; name one");
  }
  OFFHOST_RPC_ASSIGN_OR_RETURN(plan->datastore, FindDatastore(context, name), ctx,
                               "DATASTORE_NOT_FOUND");
  plan->spec.set_datastore(DatastoreResource(name));
  return grpc::Status::OK;
}

// What `offhost backup` sets from its options (cmd_backup.cc MakeRequest).
void FillOptions(BackupPlan* plan) {
  proxy::VmBackupRequest& req = plan->request;
  auto& s = req.snapshot.settings;
  auto domain = s.find("domain");
  req.snapshot.vm = domain != s.end() ? domain->second : plan->vm_id;
  if (domain != s.end()) s.erase(domain);
  req.vm_name = plan->vm_id;
  req.snapshot.full = plan->spec.full();
  req.options.catalog = !plan->spec.skip_catalog();
  if (plan->spec.has_freeze_timeout()) {
    s["freeze-timeout"] = std::to_string(plan->spec.freeze_timeout().seconds());
  } else if (!s.contains("freeze-timeout")) {
    s["freeze-timeout"] = "10";
  }
}

v1::JobPhase PhaseNamed(const std::string& name) {
  if (name == "prepare") return v1::JOB_PHASE_PREPARE;
  if (name == "snapshot") return v1::JOB_PHASE_SNAPSHOT;
  if (name == "backup") return v1::JOB_PHASE_READ;
  if (name == "release") return v1::JOB_PHASE_RELEASE;
  return v1::JOB_PHASE_UNSPECIFIED;
}

std::string BackupResultBlob(const std::string& ds, bool cataloged,
                             const proxy::VmBackupResult& r) {
  v1::BackupResult out;
  FillSnapshot(ds, r.backup.snapshot, cataloged, out.mutable_snapshot());
  for (const auto& e : r.excluded) {
    v1::ExcludedDisk* x = out.add_excluded_disks();
    x->set_name(e.name);
    x->set_reason(e.reason);
  }
  const proxy::CatalogSummary& c = r.backup.catalog;
  out.mutable_catalog()->set_file_count(c.files);
  out.mutable_catalog()->set_directory_count(c.directories);
  out.mutable_catalog()->set_skipped_name_count(c.skipped_names);
  for (const auto& n : c.not_indexed) out.mutable_catalog()->add_not_indexed(n);
  out.mutable_catalog()->set_new_bytes(c.new_bytes);
  *out.mutable_catalog()->mutable_duration() =
      TimeUtil::MillisecondsToDuration(static_cast<int64_t>(c.seconds * 1000));
  out.set_release_warning(r.release_warning);
  for (const auto& [name, secs] : r.phases) {
    v1::PhaseDuration* p = out.add_phases();
    p->set_phase(PhaseNamed(name));
    *p->mutable_duration() = TimeUtil::MillisecondsToDuration(static_cast<int64_t>(secs * 1000));
  }
  return out.SerializeAsString();
}

}  // namespace

grpc::Status PlanBackup(const ServiceContext& context, grpc::ServerContext* ctx,
                        const v1::BackupSpec& spec, BackupPlan* plan) {
  plan->spec = spec;
  const HostConfig* host = nullptr;
  const VmConfig* vm = nullptr;
  grpc::Status st;
  if (spec.has_ad_hoc()) {
    st = ResolveAdHoc(context, ctx, spec.ad_hoc(), plan, &host);
  } else if (!spec.vm().empty()) {
    st = ResolveInventoryVm(context, ctx, spec.vm(), plan, &host, &vm);
  } else {
    st = Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
              "spec has no source: set spec.vm (\"hosts/{host}/vms/{vm}\") or spec.ad_hoc");
  }
  if (!st.ok()) return st;
  if (st = ChooseDatastore(context, ctx, *host, vm, plan); !st.ok()) return st;
  if (st = SelectDisks(ctx, spec, plan); !st.ok()) return st;
  FillOptions(plan);
  return grpc::Status::OK;
}

proxy::JobFn BackupJob(BackupPlan plan) {
  return [plan = std::move(plan)](proxy::JobControl& control) -> Result<std::string> {
    OFFHOST_ASSIGN_OR_RETURN(auto ds, storage::Datastore::Open(plan.datastore->path, true));
    proxy::VmBackupRequest request = plan.request;
    proxy::BackupCounters counters;
    request.options.counters = &counters;
    request.options.cancel = &control.cancel_flag();
    Result<proxy::VmBackupResult> result = Status::Cancelled("not run");
    {
      ProgressTicker ticker(control, [&] {
        return proxy::JobProgress{.total_bytes = counters.total_bytes,
                                  .done_bytes = counters.done_bytes,
                                  .bytes_read = counters.bytes_read,
                                  .new_bytes = counters.new_bytes};
      });
      result = proxy::BackupVm(*ds, std::move(request));
    }
    if (!result.ok()) return result.status();
    if (!result->release_warning.empty()) {
      control.Warn("the snapshot view was not fully released: " + result->release_warning);
    }
    return BackupResultBlob(plan.datastore->name, !plan.spec.skip_catalog(), *result);
  };
}

}  // namespace offhost::grpcapi
