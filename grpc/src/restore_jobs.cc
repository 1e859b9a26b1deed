#include "restore_jobs.h"

#include <sys/stat.h>

#include "catalog_browse.h"
#include "datastores.h"
#include "file_info.h"
#include "jobs.h"
#include "names.h"
#include "offhost/proxy/file_restore.h"
#include "offhost/proxy/restore.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"
#include "restore_targets.h"
#include "status_map.h"

namespace offhost::grpcapi {
namespace {

grpc::Status TargetRefused(grpc::ServerContext* ctx, const Status& status) {
  if (IsRefusedTarget(status)) {
    return Fail(ctx, grpc::StatusCode::PERMISSION_DENIED, "RESTORE_TARGET_NOT_ALLOWED",
                status.message());
  }
  return ToGrpc(ctx, status, "", "NOT_A_DIRECTORY");
}

// The restore layers say AlreadyExists for an existing target; the contract says
// FAILED_PRECONDITION (TARGET_EXISTS), and a job's error carries only the code. A target that
// left the restore roots between the RPC and the job is refused the same way.
Status AsJobError(const Status& status) {
  if (status.code() == StatusCode::kAlreadyExists || IsRefusedTarget(status)) {
    return Status::FailedPrecondition(status.message());
  }
  return status;
}

std::string DiskNames(const storage::SnapshotRecord& s) {
  std::string names;
  for (const storage::DiskRecord& d : s.disks) names += (names.empty() ? "" : ", ") + d.name;
  return names;
}

grpc::Status ChooseDisk(grpc::ServerContext* ctx, const OpenSnapshot& snap,
                        const std::string& wanted, DiskRestorePlan* plan) {
  const std::vector<storage::DiskRecord>& disks = snap.record.disks;
  if (wanted.empty() && disks.size() != 1) {
    return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                snap.short_name() + " has several disks (" + DiskNames(snap.record) +
                    "); choose one in spec.disk",
                {{"field", "spec.disk"}});
  }
  for (const storage::DiskRecord& d : disks) {
    if (d.name == wanted || wanted.empty()) {
      plan->spec.set_disk(d.name);
      plan->size = d.size;
      return grpc::Status::OK;
    }
  }
  return Fail(ctx, grpc::StatusCode::NOT_FOUND, "DISK_NOT_FOUND",
              snap.short_name() + " has no disk \"" + wanted +
                  "\" (it has: " + DiskNames(snap.record) + ")");
}

grpc::Status CheckFileTarget(const ServiceContext& context, grpc::ServerContext* ctx,
                             const v1::FileTarget& target, DiskRestorePlan* plan) {
  Result<std::string> resolved = AllowedFileTarget(context.restore_roots, target.path());
  if (!resolved.ok()) return TargetRefused(ctx, resolved.status());
  struct stat st;
  if (!target.overwrite() && ::lstat(resolved->c_str(), &st) == 0) {
    return Fail(ctx, grpc::StatusCode::FAILED_PRECONDITION, "TARGET_EXISTS",
                target.path() + " exists; set overwrite to replace it");
  }
  plan->file = *resolved;
  return grpc::Status::OK;
}

grpc::Status CheckTarget(const ServiceContext& context, grpc::ServerContext* ctx,
                         const v1::DiskRestoreSpec& spec, DiskRestorePlan* plan) {
  if (spec.has_file()) {
    plan->where = spec.file().path();
    return CheckFileTarget(context, ctx, spec.file(), plan);
  }
  if (spec.has_nbd()) {
    plan->where = snapshot_drivers::MaskUri(spec.nbd().uri());
    if (!snapshot_drivers::IsNbdUri(spec.nbd().uri())) {
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                  "spec.nbd.uri is not an NBD URI (nbd://, nbds://, nbd+unix://)",
                  {{"field", "spec.nbd.uri"}});
    }
    return TargetRefused(ctx, AllowedNbdTarget(context.restore_nbd_targets, spec.nbd().uri()));
  }
  return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
              "no target: set spec.file or spec.nbd", {{"field", "spec.target"}});
}

void FillPlan(const ServiceContext& context, const OpenSnapshot& snap, RestorePlan* plan) {
  plan->datastore = *snap.config;
  plan->vm = snap.record.vm;
  plan->snapshot_id = snap.record.id;
  plan->restore_roots = context.restore_roots;
}

// Where a disk restore writes, held for the job's length: a file target removes its
// .partial when the job ends without Publish().
struct DiskTarget {
  std::unique_ptr<proxy::FileRestoreTarget> file;
  std::unique_ptr<BlockDevice> nbd;

  BlockDevice& device() { return file ? file->device() : *nbd; }
};

Result<DiskTarget> OpenDiskTarget(const DiskRestorePlan& plan) {
  DiskTarget target;
  if (!plan.file.empty()) {
    // Again: a folder of the path may have been swapped for a symlink since the RPC.
    OFFHOST_ASSIGN_OR_RETURN(std::string now,
                             AllowedFileTarget(plan.restore_roots, plan.spec.file().path()));
    if (now != plan.file) return Status(StatusCode::kNotSupported, plan.where + " moved");
    OFFHOST_ASSIGN_OR_RETURN(target.file, proxy::FileRestoreTarget::Create(
                                              plan.file, plan.size, plan.spec.file().overwrite()));
    return target;
  }
  snapshot_drivers::NbdOpenOptions options;
  options.writable = true;
  OFFHOST_ASSIGN_OR_RETURN(target.nbd, snapshot_drivers::OpenNbd(plan.spec.nbd().uri(), options));
  if (target.nbd->size() < plan.size) {
    return Status::FailedPrecondition("the NBD export " + plan.where + " holds " +
                                      std::to_string(target.nbd->size()) +
                                      " bytes; the disk needs " + std::to_string(plan.size));
  }
  return target;
}

std::string DiskResultBlob(const DiskRestorePlan& plan, const proxy::RestoreResult& r) {
  v1::DiskRestoreResult out;
  out.set_snapshot(plan.spec.snapshot());
  out.set_disk(plan.spec.disk());
  out.set_size_bytes(plan.size);
  out.set_bytes_written(r.bytes_written);
  out.set_chunk_count(r.chunks);
  out.set_target(plan.file.empty() ? plan.where : plan.file);
  return out.SerializeAsString();
}

std::string FileResultBlob(const FileRestorePlan& plan, const proxy::FileRestoreResult& r) {
  v1::FileRestoreResult out;
  out.set_snapshot(plan.spec.snapshot());
  out.set_file_count(r.files);
  out.set_directory_count(r.directories);
  out.set_symlink_count(r.symlinks);
  out.set_hard_link_count(r.hard_links);
  out.set_bytes(r.bytes);
  for (const std::string& s : r.skipped) out.add_skipped(s);
  return out.SerializeAsString();
}

}  // namespace

std::string OpenSnapshot::name() const {
  return SnapshotResource(config->name, record.vm, record.id);
}

std::string OpenSnapshot::short_name() const { return record.vm + "@" + record.id; }

grpc::Status OpenNamedSnapshot(const ServiceContext& context, grpc::ServerContext* ctx,
                               const std::string& name, OpenSnapshot* snap) {
  OFFHOST_RPC_ASSIGN_OR_RETURN(SnapshotName n, ParseSnapshotName(name, "snapshot"), ctx, "");
  OFFHOST_RPC_ASSIGN_OR_RETURN(snap->config, FindDatastore(context, n.datastore), ctx,
                               "DATASTORE_NOT_FOUND");
  OFFHOST_RPC_ASSIGN_OR_RETURN(snap->ds, OpenDatastore(*snap->config), ctx, "");
  OFFHOST_RPC_ASSIGN_OR_RETURN(snap->record, snap->ds->FindSnapshot(n.vm, n.id), ctx,
                               "SNAPSHOT_NOT_FOUND");
  return grpc::Status::OK;
}

grpc::Status PlanDiskRestore(const ServiceContext& context, grpc::ServerContext* ctx,
                             const v1::DiskRestoreSpec& spec, DiskRestorePlan* plan) {
  plan->spec = spec;
  plan->what = spec.snapshot() + " disk " + spec.disk();
  plan->where = spec.has_nbd() ? snapshot_drivers::MaskUri(spec.nbd().uri()) : spec.file().path();
  OpenSnapshot snap;
  if (auto st = OpenNamedSnapshot(context, ctx, spec.snapshot(), &snap); !st.ok()) return st;
  if (auto st = ChooseDisk(ctx, snap, spec.disk(), plan); !st.ok()) return st;
  plan->spec.set_snapshot(snap.name());
  plan->what = snap.short_name() + " disk " + plan->spec.disk();
  FillPlan(context, snap, plan);
  return CheckTarget(context, ctx, spec, plan);
}

grpc::Status PlanFileRestore(const ServiceContext& context, grpc::ServerContext* ctx,
                             const v1::FileRestoreSpec& spec, FileRestorePlan* plan) {
  plan->spec = spec;
  plan->path = GuestPath(spec);
  plan->what = spec.snapshot() + ":" + plan->path;
  plan->where = spec.target_directory();
  OpenSnapshot snap;
  if (auto st = OpenNamedSnapshot(context, ctx, spec.snapshot(), &snap); !st.ok()) return st;
  plan->spec.set_snapshot(snap.name());
  plan->what = snap.short_name() + ":" + plan->path;
  FillPlan(context, snap, plan);
  Result<std::string> dir = AllowedDirectoryTarget(context.restore_roots, spec.target_directory());
  if (!dir.ok()) return TargetRefused(ctx, dir.status());
  plan->directory = *dir;
  BrowseTarget browse{snap.ds.get(), &snap.record, nullptr, nullptr};
  Result<v1::FileInfo> entry = StatEntry(browse, plan->path);
  if (!entry.ok()) return ToGrpc(ctx, entry.status(), "PATH_NOT_FOUND", "VOLUME_NOT_READABLE");
  return grpc::Status::OK;
}

proxy::JobFn DiskRestoreJob(DiskRestorePlan plan) {
  return [plan](proxy::JobControl& control) -> Result<std::string> {
    OFFHOST_ASSIGN_OR_RETURN(auto ds, OpenDatastore(plan.datastore));
    OFFHOST_ASSIGN_OR_RETURN(storage::SnapshotRecord snap,
                             ds->FindSnapshot(plan.vm, plan.snapshot_id));
    Result<DiskTarget> target = OpenDiskTarget(plan);
    if (!target.ok()) return AsJobError(target.status());
    proxy::RestoreCounters counters;
    proxy::RestoreOptions options;
    options.target_is_zeroed = target->file && target->file->zeroed();
    options.counters = &counters;
    options.cancel = &control.cancel_flag();
    Result<proxy::RestoreResult> r = Status::Cancelled("not run");
    {
      ProgressTicker ticker(control, [&] {
        return proxy::JobProgress{.total_bytes = counters.total_bytes,
                                  .done_bytes = counters.done_bytes};
      });
      r = proxy::RestoreDisk(*ds, snap, plan.spec.disk(), target->device(), options);
    }
    if (!r.ok()) return r.status();  // the target's .partial goes with `target`
    if (target->file) OFFHOST_RETURN_IF_ERROR(target->file->Publish());
    if (!target->file) OFFHOST_RETURN_IF_ERROR(target->nbd->Flush());
    return DiskResultBlob(plan, *r);
  };
}

proxy::JobFn FileRestoreJob(FileRestorePlan plan) {
  return [plan](proxy::JobControl& control) -> Result<std::string> {
    OFFHOST_ASSIGN_OR_RETURN(auto ds, OpenDatastore(plan.datastore));
    OFFHOST_ASSIGN_OR_RETURN(storage::SnapshotRecord snap,
                             ds->FindSnapshot(plan.vm, plan.snapshot_id));
    // Again: the folder may have been swapped for a symlink since the RPC.
    Result<std::string> dir = AllowedDirectoryTarget(plan.restore_roots, plan.directory);
    if (!dir.ok()) return AsJobError(dir.status());
    OFFHOST_ASSIGN_OR_RETURN(auto opened, proxy::SnapshotFiles::Open(*ds, snap));
    Result<proxy::FileRestoreResult> r =
        proxy::RestoreFiles(opened->files(), plan.path, *dir,
                            {.overwrite = plan.spec.overwrite(), .keep_setid = false});
    if (!r.ok()) return AsJobError(r.status());
    for (const std::string& s : r->skipped) control.Warn("skipped " + s);
    uint64_t entries = r->files + r->directories + r->symlinks;
    control.SetProgress({.total_bytes = r->bytes,
                         .done_bytes = r->bytes,
                         .total_items = entries,
                         .done_items = entries});
    if (control.cancel_flag())
      return Status::Cancelled("cancelled; the file restore ran to its end");
    return FileResultBlob(plan, *r);
  };
}

}  // namespace offhost::grpcapi
