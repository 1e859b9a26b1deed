// Retention: which snapshots of a VM a keep-last/hourly/daily/weekly/monthly/yearly policy
// keeps, and why. Semantics (as restic's `forget`; docs/retention.md): snapshots are taken
// newest first; keep-last N keeps the N newest; each period rule keeps the newest snapshot of
// each of the N most recent periods (UTC hours, days, ISO weeks, months, years) that have a
// snapshot. A snapshot may be kept by several rules; it is removed only when no rule keeps it.
#pragma once

#include <string>
#include <vector>

#include "offhost/common/status.h"
#include "offhost/storage/datastore.h"

namespace offhost::storage {

struct RetentionPolicy {
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  int keep_yearly = 0;
};

// OK when the policy keeps at least one snapshot and no count is negative.
Status ValidateRetentionPolicy(const RetentionPolicy& policy);

struct RetentionDecision {
  SnapshotRecord snapshot;
  bool keep = false;
  std::vector<std::string> reasons;  // "last 1", "daily 2026-12-31", "weekly 2026-W53", ...
};

// The decision for every snapshot of one VM, newest first. Snapshots are timed by their
// start (`started`, UTC).
std::vector<RetentionDecision> ApplyRetention(std::vector<SnapshotRecord> snapshots,
                                              const RetentionPolicy& policy);

}  // namespace offhost::storage
