#include "verify_job.h"

#include "jobs.h"
#include "names.h"
#include "offhost/storage/verify.h"
#include "offhost/v1/jobs.pb.h"

namespace offhost::grpcapi {
namespace {

// VerifyResult and the Job keep the first ones only (jobs.proto).
constexpr size_t kMaxDamagedListed = 1000;

void FillDamaged(const std::string& ds, const storage::DamagedChunk& d, v1::DamagedChunk* out) {
  out->set_chunk(d.id.Hex());
  out->set_path(d.path);
  out->set_reason(d.reason);
  out->set_moved_to(d.moved_to);
  for (const storage::ChunkUse& u : d.uses) {
    v1::ChunkUse* use = out->add_uses();
    use->set_snapshot(SnapshotResource(ds, u.vm, u.snapshot));
    use->set_disk(u.disk);
    for (uint64_t offset : u.offsets) use->add_offsets(offset);
    use->set_count(u.count);
  }
}

std::string VerifyResultBlob(const std::string& ds, const storage::VerifyReport& r) {
  v1::VerifyResult out;
  out.set_chunks_checked(r.chunks_checked);
  out.set_bytes_checked(r.bytes_checked);
  out.set_snapshots_checked(r.snapshots_checked);
  out.set_damaged_chunk_count(r.damaged.size());
  for (size_t i = 0; i < r.damaged.size() && i < kMaxDamagedListed; ++i) {
    FillDamaged(ds, r.damaged[i], out.add_damaged_chunks());
  }
  out.set_catalog_trees_checked(r.catalog_trees_checked);
  for (size_t i = 0; i < r.damaged_catalogs.size() && i < kMaxDamagedListed; ++i) {
    const storage::DamagedCatalog& d = r.damaged_catalogs[i];
    v1::DamagedCatalog* c = out.add_damaged_catalogs();
    c->set_snapshot(SnapshotResource(ds, d.vm, d.snapshot));
    c->set_tree(d.tree);
    c->set_reason(d.reason);
  }
  return out.SerializeAsString();
}

}  // namespace

proxy::JobFn VerifyJob(const DatastoreConfig& datastore, bool quarantine) {
  return [datastore, quarantine](proxy::JobControl& control) -> Result<std::string> {
    OFFHOST_ASSIGN_OR_RETURN(auto ds, storage::Datastore::Open(datastore.path, quarantine));
    std::atomic<uint64_t> done{0}, total{0};
    storage::VerifyOptions options;
    options.quarantine = quarantine;
    options.progress = [&](uint64_t d, uint64_t t) {
      done = d;
      total = t;
    };
    Result<storage::VerifyReport> report = Status::Cancelled("not run");
    {
      ProgressTicker ticker(
          control, [&] { return proxy::JobProgress{.total_items = total, .done_items = done}; });
      report = storage::VerifyDatastore(*ds, options);
    }
    if (!report.ok()) return report.status();
    if (control.cancel_flag()) return Status::Cancelled("cancelled; the verify ran to its end");
    for (const storage::DamagedChunk& d : report->damaged) {
      control.Warn("damaged chunk " + d.id.Hex() + ": " + d.reason);
    }
    for (const storage::DamagedCatalog& d : report->damaged_catalogs) {
      control.Warn("damaged catalog of " + d.vm + "@" + d.snapshot + ": " + d.reason);
    }
    return VerifyResultBlob(datastore.name, *report);
  };
}

}  // namespace offhost::grpcapi
