// Prune by a VM's retention policy (ScheduleService.PruneSnapshots, and after a scheduled
// backup): storage::ApplyRetention on the VM's snapshots, then one DeleteSnapshots. The same
// rules as `offhost prune` (docs/retention.md).
#pragma once

#include <string>
#include <vector>

#include "offhost/storage/datastore.h"
#include "offhost/storage/retention.h"

namespace offhost::grpcapi {

struct PruneOutcome {
  std::vector<storage::RetentionDecision> decisions;  // newest first
  size_t kept = 0, removed = 0;
  std::string Summary() const;  // "kept 2, removed 1 (2026-12-07T01:00:00Z)"
};

Result<PruneOutcome> PruneVm(storage::Datastore& ds, const std::string& vm_id,
                             const storage::RetentionPolicy& policy, bool dry_run);

}  // namespace offhost::grpcapi
