#include "backup_job.h"

#include <google/protobuf/util/time_util.h>

#include <thread>

#include "datastores.h"
#include "inventory.h"
#include "jobs.h"
#include "names.h"
#include "offhost/grpc/scheduler.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"
#include "prune.h"
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
  plan->vm = *vm;
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
  out.mutable_catalog()->set_unreadable_folder_count(c.unreadable_dirs);
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

namespace {

// One backup job's state across its attempts.
struct BackupRun {
  BackupPlan plan;
  BackupRunPolicy policy;
  std::unique_ptr<proxy::SlotLimiter::Slot> slot;
  bool window_warned = false;

  const proxy::VmPolicy* vm_policy() const { return plan.vm ? &plan.vm->policy : nullptr; }
  int64_t Now() const {
    return policy.scheduler ? policy.scheduler->Now()
                            : std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  }
};

Status AcquireSlot(BackupRun& run, proxy::JobControl& control) {
  if (run.policy.scheduler == nullptr || run.slot) return Status::OK();
  const std::string& ds = run.plan.datastore->name;
  OFFHOST_ASSIGN_OR_RETURN(
      run.slot, run.policy.scheduler->slots().Acquire(
                    run.plan.host, ds, &control.cancel_flag(), [&](const std::string& why) {
                      control.SetPhase("waiting_for_slot");
                      control.Note("waiting", "waiting for a host slot: " + why);
                    }));
  control.SetPhase("");
  control.Note("slot", "host " + run.plan.host + ", datastore " + ds);
  return Status::OK();
}

void ReleaseSlot(BackupRun& run, proxy::JobControl& control) {
  if (!run.slot) return;
  // Noted before the slot is given back, as "slot" is noted after it was taken: each job's
  // recorded span lies within its tenure, so the timelines never show more at once than ran.
  control.Note("released", "");
  run.slot.reset();
}

// A scheduled backup warns once when it runs past the end of the window its schedule fired
// in (or started outside of it); it is not stopped.
void CheckWindow(BackupRun& run, proxy::JobControl& control) {
  const proxy::VmPolicy* vp = run.vm_policy();
  if (!run.policy.scheduled || vp == nullptr || !vp->window || run.window_warned) return;
  int64_t now = run.Now();
  std::optional<int64_t> end = proxy::WindowEnd(*vp->window, run.policy.scheduled_at);
  std::string w = "backup window " + vp->window->text + " (UTC)";
  if (!end) {
    run.window_warned = true;
    control.Warn("past its " + w + ": scheduled at " + proxy::FormatUtc(run.policy.scheduled_at) +
                 ", outside the window; it runs anyway");
  } else if (now >= *end) {
    run.window_warned = true;
    control.Warn("past its " + w + ": still running at " + proxy::FormatUtc(now) +
                 ", the window ended at " + proxy::FormatUtc(*end) + "; it is not stopped");
  }
}

// The VM's own limit and its host's, applied to every batch of source reads.
std::function<Status(uint64_t)> Throttle(const BackupRun& run, const std::atomic<bool>* cancel) {
  const proxy::VmPolicy* vp = run.vm_policy();
  auto own =
      vp && vp->bandwidth > 0 ? std::make_shared<proxy::RateLimiter>(vp->bandwidth) : nullptr;
  auto host = run.policy.scheduler ? run.policy.scheduler->HostRate(run.plan.host) : nullptr;
  if (!own && !host) return nullptr;
  return [own, host, cancel](uint64_t bytes) -> Status {
    if (own) OFFHOST_RETURN_IF_ERROR(own->Take(bytes, cancel));
    if (host) OFFHOST_RETURN_IF_ERROR(host->Take(bytes, cancel));
    return Status::OK();
  };
}

Result<std::string> RunOnce(BackupRun& run, proxy::JobControl& control) {
  const BackupPlan& plan = run.plan;
  OFFHOST_ASSIGN_OR_RETURN(auto ds, storage::Datastore::Open(plan.datastore->path, true));
  proxy::VmBackupRequest request = plan.request;
  proxy::BackupCounters counters;
  request.options.counters = &counters;
  request.options.cancel = &control.cancel_flag();
  request.options.throttle = Throttle(run, &control.cancel_flag());
  Result<proxy::VmBackupResult> result = Status::Cancelled("not run");
  {
    ProgressTicker ticker(control, [&] {
      CheckWindow(run, control);
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
}

// After a scheduled backup: the VM's retention policy. A failed prune is a warning: the
// backup itself succeeded.
void PruneAfter(const BackupRun& run, proxy::JobControl& control) {
  const proxy::VmPolicy* vp = run.vm_policy();
  if (!run.policy.scheduled || vp == nullptr || !vp->retention) return;
  auto ds = storage::Datastore::Open(run.plan.datastore->path, true);
  Result<PruneOutcome> out =
      ds.ok() ? PruneVm(**ds, run.plan.vm_id, *vp->retention, false) : ds.status();
  if (!out.ok()) {
    control.Warn("prune by the retention policy failed: " + out.status().message());
    return;
  }
  control.Note("pruned", out->Summary());
}

// Waits `delay` unless cancelled first.
bool Backoff(std::chrono::seconds delay, const std::atomic<bool>& cancel) {
  auto until = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < until) {
    if (cancel) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return !cancel;
}

Result<std::string> RunWithRetries(BackupRun& run, proxy::JobControl& control) {
  const proxy::VmPolicy* vp = run.vm_policy();
  int retries = run.policy.scheduled && vp ? vp->retries : 0;
  for (int attempt = 1;; ++attempt) {
    OFFHOST_RETURN_IF_ERROR(AcquireSlot(run, control));
    CheckWindow(run, control);
    Result<std::string> result = RunOnce(run, control);
    ReleaseSlot(run, control);
    if (result.ok()) {
      PruneAfter(run, control);
      return result;
    }
    const Status& st = result.status();
    if (control.cancel_flag()) return st;
    std::string of = "attempt " + std::to_string(attempt) + " of " + std::to_string(retries + 1);
    if (attempt > retries) {
      if (retries == 0) return st;
      return Status(st.code(), st.message() + " (" + of + ", the last)");
    }
    std::chrono::seconds delay = proxy::RetryDelay(vp->retry_backoff, attempt);
    control.Note("attempt_failed", of + ": " + st.message() + "; next attempt in " +
                                       std::to_string(delay.count()) + "s");
    control.SetPhase("retry_wait");
    if (!Backoff(delay, control.cancel_flag())) return st;
    control.SetPhase("");
  }
}

}  // namespace

Result<proxy::JobRecord> StartBackupJob(const ServiceContext& context, const BackupPlan& plan,
                                        proxy::JobRecord record, const BackupRunPolicy& policy) {
  std::string vm = "hosts/" + plan.host + "/vms/" + plan.vm_id;
  record.keys = {{"vm", vm},
                 {"vm_id", plan.vm_id},
                 {"group", GroupResource(plan.datastore->name, plan.vm_id)},
                 {"datastore", plan.datastore->name}};
  auto run = std::make_shared<BackupRun>();
  run->plan = plan;
  run->policy = policy;
  proxy::JobAdmitFn admit;
  if (policy.scheduler != nullptr) {
    admit = [run](proxy::JobControl& control) { return AcquireSlot(*run, control); };
  }
  return context.jobs->Start(
      std::move(record),
      [run](proxy::JobControl& control) -> Result<std::string> {
        Result<std::string> out = RunWithRetries(*run, control);
        ReleaseSlot(*run, control);
        return out;
      },
      admit);
}

}  // namespace offhost::grpcapi
