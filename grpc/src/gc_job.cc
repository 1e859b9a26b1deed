#include "gc_job.h"

#include <atomic>

#include "file_info.h"
#include "jobs.h"
#include "offhost/storage/gc.h"

namespace offhost::grpcapi {
namespace {

std::string GcResultBlob(const storage::GcReport& r) {
  v1::GcResult out;
  out.set_dry_run(r.dry_run);
  out.set_chunk_count(r.sweep.chunks);
  out.set_referenced_chunk_count(r.sweep.referenced);
  out.set_removed_chunk_count(r.sweep.removed);
  out.set_removed_bytes(r.sweep.removed_bytes);
  out.set_kept_recent_chunk_count(r.sweep.recent);
  out.set_kept_recent_bytes(r.sweep.recent_bytes);
  out.set_removed_temporary_file_count(r.sweep.temporary_removed);
  out.set_running_backup_count(static_cast<uint32_t>(r.running_backups));
  out.set_snapshot_count(r.snapshots);
  SetTime(r.cutoff, out.mutable_cutoff_time());
  out.set_mark_seconds(r.mark_seconds);
  out.set_sweep_seconds(r.sweep_seconds);
  out.set_catalog_tree_count(r.trees.trees);
  out.set_referenced_catalog_tree_count(r.trees.referenced);
  out.set_removed_catalog_tree_count(r.trees.removed);
  out.set_removed_catalog_tree_bytes(r.trees.removed_bytes);
  out.set_kept_unused_catalog_tree_count(r.trees.kept_unused);
  out.set_kept_unused_catalog_tree_bytes(r.trees.kept_unused_bytes);
  out.set_catalog_trees_not_collected(r.trees.not_collected);
  return out.SerializeAsString();
}

}  // namespace

proxy::JobFn GcJob(const DatastoreConfig& datastore, const v1::GcSpec& spec) {
  return [datastore, spec](proxy::JobControl& control) -> Result<std::string> {
    OFFHOST_ASSIGN_OR_RETURN(auto ds, storage::Datastore::Open(datastore.path, !spec.dry_run()));
    std::atomic<uint64_t> done{0}, total{0};
    storage::GcOptions options;
    options.dry_run = spec.dry_run();
    if (spec.min_age_seconds() > 0) options.min_age_seconds = spec.min_age_seconds();
    options.progress = [&](const char* phase, uint64_t d, uint64_t t) {
      if (std::string(phase) != "sweep") return;
      done = d;
      total = t;
    };
    options.stop = [&] { return control.cancel_flag().load(); };
    Result<storage::GcReport> report = Status::Cancelled("not run");
    {
      ProgressTicker ticker(
          control, [&] { return proxy::JobProgress{.total_items = total, .done_items = done}; });
      report = storage::CollectGarbage(*ds, options);
    }
    if (!report.ok()) return report.status();
    return GcResultBlob(*report);
  };
}

}  // namespace offhost::grpcapi
