#include "prune.h"

namespace offhost::grpcapi {

std::string PruneOutcome::Summary() const {
  std::string removed_ids;
  for (const auto& d : decisions) {
    if (!d.keep) removed_ids += (removed_ids.empty() ? "" : ", ") + d.snapshot.id;
  }
  return "kept " + std::to_string(kept) + ", removed " + std::to_string(removed) +
         (removed_ids.empty() ? "" : " (" + removed_ids + ")");
}

Result<PruneOutcome> PruneVm(storage::Datastore& ds, const std::string& vm_id,
                             const storage::RetentionPolicy& policy, bool dry_run) {
  OFFHOST_ASSIGN_OR_RETURN(std::vector<storage::SnapshotRecord> all, ds.ListSnapshots(vm_id));
  PruneOutcome out;
  out.decisions = storage::ApplyRetention(std::move(all), policy);
  std::vector<storage::SnapshotRecord> remove;
  for (const auto& d : out.decisions) {
    if (!d.keep) remove.push_back(d.snapshot);
  }
  if (!dry_run) {
    auto in_use = ds.DeleteSnapshots(remove);
    if (!in_use.ok()) {
      return in_use.status().WithContext("prune " + vm_id + ": nothing was removed");
    }
    storage::KeepSnapshotsInUse(*in_use, &out.decisions);
  }
  for (const auto& d : out.decisions) (d.keep ? out.kept : out.removed) += 1;
  return out;
}

}  // namespace offhost::grpcapi
