// offhost.v1 ScheduleService (schedule.proto): the configured schedules, "run now" and prune
// by a VM's retention policy, over the daemon's BackupScheduler.
#include <google/protobuf/util/time_util.h>

#include "datastores.h"
#include "inventory.h"
#include "jobs.h"
#include "names.h"
#include "offhost/grpc/scheduler.h"
#include "offhost/v1/schedule.grpc.pb.h"
#include "prune.h"
#include "services.h"
#include "status_map.h"

namespace offhost::grpcapi {
namespace {

using google::protobuf::util::TimeUtil;

void FillRetention(const storage::RetentionPolicy& p, v1::RetentionPolicy* out) {
  out->set_keep_last(p.keep_last);
  out->set_keep_hourly(p.keep_hourly);
  out->set_keep_daily(p.keep_daily);
  out->set_keep_weekly(p.keep_weekly);
  out->set_keep_monthly(p.keep_monthly);
  out->set_keep_yearly(p.keep_yearly);
}

void FillSchedule(const ServiceContext& context, const BackupScheduler& sched,
                  const BackupScheduler::Entry& e, v1::VmSchedule* out) {
  const proxy::VmPolicy& p = e.vm->policy;
  out->set_vm("hosts/" + e.vm->host + "/vms/" + e.vm->name);
  if (e.host != nullptr) {
    std::string ds = DefaultDatastore(context, *e.host, e.vm);
    if (!ds.empty()) out->set_datastore(DatastoreResource(ds));
    out->set_host_bandwidth_limit(e.host->bandwidth);
  }
  if (p.schedule) {
    out->set_calendar(p.schedule->text);
    *out->mutable_next_run() = TimeUtil::SecondsToTimestamp(e.next_run);
  }
  out->set_full_every_days(p.full_every_days);
  if (p.full_every_days > 0) {
    *out->mutable_next_full_day() = TimeUtil::SecondsToTimestamp(
        proxy::NextFullDay(sched.Now(), p.full_every_days, e.full_offset));
  }
  if (p.window) out->set_window(p.window->text);
  out->set_retries(p.retries);
  *out->mutable_retry_backoff() = TimeUtil::SecondsToDuration(p.retry_backoff.count());
  out->set_bandwidth_limit(p.bandwidth);
  if (p.retention) FillRetention(*p.retention, out->mutable_retention());
}

class ScheduleService final : public v1::ScheduleService::Service {
 public:
  explicit ScheduleService(ServiceContext& context) : context_(context) {}

  grpc::Status ListSchedules(grpc::ServerContext* ctx, const v1::ListSchedulesRequest*,
                             v1::ListSchedulesResponse* out) override {
    if (auto st = Check(ctx, Role::kReadOnly); !st.ok()) return st;
    for (const BackupScheduler::Entry& e : context_.scheduler->List()) {
      if (!e.vm->policy.schedule && !e.vm->policy.retention) continue;
      FillSchedule(context_, *context_.scheduler, e, out->add_schedules());
    }
    return grpc::Status::OK;
  }

  grpc::Status RunSchedule(grpc::ServerContext* ctx, const v1::RunScheduleRequest* req,
                           v1::RunScheduleResponse* out) override {
    if (auto st = Check(ctx, Role::kOperator); !st.ok()) return st;
    std::vector<const VmConfig*> vms;
    for (const std::string& name : req->vms()) {
      const VmConfig* vm = nullptr;
      if (auto st = Resolve(ctx, name, &vm); !st.ok()) return st;
      if (!vm->policy.schedule) {
        return Fail(ctx, grpc::StatusCode::FAILED_PRECONDITION, "NO_SCHEDULE",
                    "VM " + vm->name + " has no schedule in offhostd's configuration");
      }
      vms.push_back(vm);
    }
    if (req->vms().empty()) {
      for (const VmConfig& vm : context_.vms) {
        if (vm.policy.schedule) vms.push_back(&vm);
      }
    }
    for (const VmConfig* vm : vms) {
      Result<proxy::JobRecord> job = context_.scheduler->RunNow(*vm);
      if (!job.ok() && job.status().code() == StatusCode::kUnavailable) {
        return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "SHUTTING_DOWN", job.status().message());
      }
      if (!job.ok()) return ToGrpc(ctx, job.status(), "");
      FillJob(*job, out->add_jobs());
    }
    return grpc::Status::OK;
  }

  grpc::Status PruneSnapshots(grpc::ServerContext* ctx, const v1::PruneSnapshotsRequest* req,
                              v1::PruneSnapshotsResponse* out) override {
    Role needed = req->dry_run() ? Role::kReadOnly : Role::kOperator;
    if (auto st = Check(ctx, needed); !st.ok()) return st;
    const VmConfig* vm = nullptr;
    if (auto st = Resolve(ctx, req->vm(), &vm); !st.ok()) return st;
    if (!vm->policy.retention) {
      return Fail(ctx, grpc::StatusCode::FAILED_PRECONDITION, "NO_RETENTION_POLICY",
                  "VM " + vm->name +
                      " has no retention policy in offhostd's configuration; "
                      "add retention = { keep_daily = 14, ... } to its [[vm]]");
    }
    const HostConfig* host = FindHost(context_, vm->host);
    std::string ds_name = host ? DefaultDatastore(context_, *host, vm) : "";
    OFFHOST_RPC_ASSIGN_OR_RETURN(const DatastoreConfig* dsc, FindDatastore(context_, ds_name), ctx,
                                 "DATASTORE_NOT_FOUND");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto ds, storage::Datastore::Open(dsc->path, !req->dry_run()), ctx,
                                 "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(PruneOutcome pruned,
                                 PruneVm(*ds, vm->name, *vm->policy.retention, req->dry_run()), ctx,
                                 "");
    for (const auto& d : pruned.decisions) {
      v1::PruneDecision* p = out->add_decisions();
      p->set_snapshot(SnapshotResource(dsc->name, vm->name, d.snapshot.id));
      p->set_keep(d.keep);
      for (const std::string& r : d.reasons) p->add_reasons(r);
    }
    out->set_kept_count(pruned.kept);
    out->set_removed_count(pruned.removed);
    out->set_dry_run(req->dry_run());
    return grpc::Status::OK;
  }

 private:
  grpc::Status Check(grpc::ServerContext* ctx, Role needed) {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, needed, &caller); !st.ok()) return st;
    if (auto st = JobsAvailable(context_, ctx); !st.ok()) return st;
    if (context_.scheduler != nullptr) return grpc::Status::OK;
    return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "", "this server runs no scheduler");
  }

  grpc::Status Resolve(grpc::ServerContext* ctx, const std::string& name, const VmConfig** vm) {
    std::string host, vm_name;
    if (!SplitVmName(name, &host, &vm_name)) {
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_NAME",
                  "\"" + name + "\" is not \"hosts/{host}/vms/{vm}\" (host may be \"-\")");
    }
    *vm = FindVm(context_, vm_name);
    if (*vm == nullptr || (host != kAny && (*vm)->host != host)) {
      return Fail(ctx, grpc::StatusCode::NOT_FOUND, "VM_NOT_FOUND",
                  "no VM " + name + " in offhostd's configuration ([[vm]])");
    }
    return grpc::Status::OK;
  }

  ServiceContext& context_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeScheduleService(ServiceContext& context) {
  return std::make_unique<ScheduleService>(context);
}

}  // namespace offhost::grpcapi
