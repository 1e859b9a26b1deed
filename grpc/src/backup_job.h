// A backup as a job: StartBackup's spec checked against the inventory and turned into the
// proxy::VmBackupRequest `offhost backup` would make (proxy/cli/cmd_backup.cc), and the job
// that runs it.
#pragma once

#include <grpcpp/grpcpp.h>

#include "offhost/grpc/service_context.h"
#include "offhost/proxy/job_engine.h"
#include "offhost/proxy/vm_backup.h"
#include "offhost/v1/jobs.pb.h"

namespace offhost::grpcapi {

struct BackupPlan {
  v1::BackupSpec spec;  // as asked, with the defaults filled in (the datastore)
  const DatastoreConfig* datastore = nullptr;
  const VmConfig* vm = nullptr;  // null for ad-hoc sources
  std::string host, vm_id;
  proxy::VmBackupRequest request;
};

// Checks `spec` (names, the VM or ad-hoc host, the datastore, the disks) and fills `plan`;
// a failure is the RPC's answer, with its reason (HOST_NOT_FOUND, SOURCE_NOT_ALLOWED, ...).
grpc::Status PlanBackup(const ServiceContext& context, grpc::ServerContext* ctx,
                        const v1::BackupSpec& spec, BackupPlan* plan);

// How a backup job runs besides the plan (docs/scheduler.md).
struct BackupRunPolicy {
  // Backup slots and the host's bandwidth limit; null: the job runs at once, unlimited.
  BackupScheduler* scheduler = nullptr;
  // A scheduled run (ScheduleService, the calendar): retries, window and prune apply.
  bool scheduled = false;
  int64_t scheduled_at = 0;  // unix seconds: when the schedule fired (for the window)
};

// Starts a backup job for `plan` (the ListJobs keys are set here): QUEUED until it has a
// backup slot, then proxy::BackupVm with the VM's bandwidth limit; a scheduled one is
// retried with backoff, warns when it runs past its window and prunes by the VM's retention
// policy after it succeeded. Its result is a serialized v1::BackupResult.
Result<proxy::JobRecord> StartBackupJob(const ServiceContext& context, const BackupPlan& plan,
                                        proxy::JobRecord record, const BackupRunPolicy& policy);

}  // namespace offhost::grpcapi
