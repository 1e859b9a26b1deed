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
  std::string host, vm_id;
  proxy::VmBackupRequest request;
};

// Checks `spec` (names, the VM or ad-hoc host, the datastore, the disks) and fills `plan`;
// a failure is the RPC's answer, with its reason (HOST_NOT_FOUND, SOURCE_NOT_ALLOWED, ...).
grpc::Status PlanBackup(const ServiceContext& context, grpc::ServerContext* ctx,
                        const v1::BackupSpec& spec, BackupPlan* plan);

// Runs proxy::BackupVm; its result is a serialized v1::BackupResult.
proxy::JobFn BackupJob(BackupPlan plan);

}  // namespace offhost::grpcapi
