// Restores as jobs (RestoreService.StartDiskRestore / StartFileRestore): the request checked
// and resolved into a plan — snapshot, disk, and a target inside the configured restore roots —
// and the job that runs proxy::RestoreDisk or proxy::RestoreFiles, as `offhost restore` and
// `offhost restore-file` do.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "offhost/grpc/service_context.h"
#include "offhost/proxy/job_engine.h"
#include "offhost/storage/datastore.h"
#include "offhost/v1/jobs.pb.h"

namespace offhost::grpcapi {

// The snapshot a request names, resolved ("latest" too), with its datastore open.
struct OpenSnapshot {
  const DatastoreConfig* config = nullptr;
  std::unique_ptr<storage::Datastore> ds;
  storage::SnapshotRecord record;

  std::string name() const;        // "datastores/{ds}/vms/{vm}/snapshots/{id}"
  std::string short_name() const;  // "VM@ID", as the audit log and the CLI show it
};

// A failure is the RPC's answer (DATASTORE_NOT_FOUND, SNAPSHOT_NOT_FOUND, ...).
grpc::Status OpenNamedSnapshot(const ServiceContext& context, grpc::ServerContext* ctx,
                               const std::string& name, OpenSnapshot* snap);

// What a restore job needs, copied out of the request and the context: the job outlives both.
struct RestorePlan {
  DatastoreConfig datastore;
  std::string vm, snapshot_id;
  std::vector<std::string> restore_roots;  // the job checks its target again before writing
  std::string what, where;                 // for the audit log: "VM@ID disk vda", the target
};

struct DiskRestorePlan : RestorePlan {
  v1::DiskRestoreSpec spec;  // as asked, with the snapshot resolved and the disk chosen
  uint64_t size = 0;         // of the disk
  std::string file;          // the resolved file target; empty for NBD
};

struct FileRestorePlan : RestorePlan {
  v1::FileRestoreSpec spec;  // as asked, with the snapshot resolved
  std::string path;          // the guest path
  std::string directory;     // the resolved target folder
};

// Check the spec (names, snapshot, disk or path, target allowed and, for a disk to a file,
// absent unless overwrite) and fill the plan; a failure is the RPC's answer. plan->what and
// plan->where are filled as soon as known, so a refused request is audited with them too.
grpc::Status PlanDiskRestore(const ServiceContext& context, grpc::ServerContext* ctx,
                             const v1::DiskRestoreSpec& spec, DiskRestorePlan* plan);
grpc::Status PlanFileRestore(const ServiceContext& context, grpc::ServerContext* ctx,
                             const v1::FileRestoreSpec& spec, FileRestorePlan* plan);

// Results are a serialized v1::DiskRestoreResult / v1::FileRestoreResult.
proxy::JobFn DiskRestoreJob(DiskRestorePlan plan);
// proxy::RestoreFiles has no way to stop early: a cancelled file restore runs to its end,
// then ends CANCELLED.
proxy::JobFn FileRestoreJob(FileRestorePlan plan);

}  // namespace offhost::grpcapi
