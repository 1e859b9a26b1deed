// offhost.v1 BackupService (backup.proto): StartBackup checks the request against the
// inventory and starts a backup job (backup_job.h) on the daemon's JobEngine.
#include "backup_job.h"
#include "jobs.h"
#include "names.h"
#include "offhost/v1/backup.grpc.pb.h"
#include "services.h"
#include "status_map.h"

namespace offhost::grpcapi {
namespace {

// Another backup of the same VM that has not ended, unless it is this request's retry (which
// the engine answers with that job).
const proxy::JobRecord* RunningBackup(const std::vector<proxy::JobRecord>& jobs,
                                      const v1::StartBackupRequest& req, const Principal& caller) {
  for (const proxy::JobRecord& job : jobs) {
    bool retry = !req.request_id().empty() && job.request_id == req.request_id() &&
                 job.creator == caller.name;
    if (!proxy::IsTerminal(job.state) && !retry) return &job;
  }
  return nullptr;
}

class BackupService final : public v1::BackupService::Service {
 public:
  explicit BackupService(ServiceContext& context) : context_(context) {}

  grpc::Status StartBackup(grpc::ServerContext* ctx, const v1::StartBackupRequest* req,
                           v1::Job* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    if (auto st = JobsAvailable(context_, ctx); !st.ok()) return st;
    BackupPlan plan;
    if (auto st = PlanBackup(context_, ctx, req->spec(), &plan); !st.ok()) return st;
    proxy::JobRecord record =
        NewJobRecord(v1::JOB_TYPE_BACKUP, plan.spec, req->request_id(), req->labels(), caller.name);
    if (req->validate_only()) {
      out->set_type(v1::JOB_TYPE_BACKUP);
      *out->mutable_backup() = plan.spec;
      return grpc::Status::OK;
    }
    std::string vm = "hosts/" + plan.host + "/vms/" + plan.vm_id;
    std::vector<proxy::JobRecord> same_vm =
        context_.jobs->List({.types = {"backup"}, .keys = {{"vm_id", plan.vm_id}}});
    if (const proxy::JobRecord* running = RunningBackup(same_vm, *req, caller)) {
      return Fail(ctx, grpc::StatusCode::FAILED_PRECONDITION, "VM_BACKUP_RUNNING",
                  "a backup of " + vm + " is running: " + JobResource(running->id),
                  {{"job", JobResource(running->id)}});
    }
    Result<proxy::JobRecord> job =
        StartBackupJob(context_, plan, std::move(record), {.scheduler = context_.scheduler});
    if (!job.ok() && job.status().code() == StatusCode::kAlreadyExists) {
      return Fail(ctx, grpc::StatusCode::ALREADY_EXISTS, "REQUEST_ID_REUSED",
                  job.status().message());
    }
    if (!job.ok() && job.status().code() == StatusCode::kUnavailable) {
      return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "SHUTTING_DOWN", job.status().message());
    }
    if (!job.ok()) return ToGrpc(ctx, job.status(), "");
    FillJob(*job, out);
    return grpc::Status::OK;
  }

 private:
  ServiceContext& context_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeBackupService(ServiceContext& context) {
  return std::make_unique<BackupService>(context);
}

}  // namespace offhost::grpcapi
