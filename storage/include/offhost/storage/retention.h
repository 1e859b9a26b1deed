// Retention: which snapshots of a VM a keep-last/hourly/daily/weekly/monthly/yearly policy
// keeps, and why (docs/retention.md): snapshots are taken newest first (by id); keep-last N
// keeps the N newest; each period rule keeps the newest snapshot of each of the N most recent
// periods (UTC hours, days, ISO weeks, months, years of their start) that have a snapshot.
// The newest snapshot of each VM identity (UUID) is always kept: it is the base of the next
// incremental. A snapshot may be kept by several rules; it is removed when none keeps it.
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

// The decision for every snapshot of one VM name, newest (greatest id) first. Periods are
// those of the snapshots' start (`started`, UTC).
std::vector<RetentionDecision> ApplyRetention(std::vector<SnapshotRecord> snapshots,
                                              const RetentionPolicy& policy);

// The decisions to remove a snapshot that a prune had to keep because it is being read
// (Datastore::DeleteSnapshots returned it) become decisions to keep it, saying why.
void KeepSnapshotsInUse(const std::vector<SnapshotRecord>& in_use,
                        std::vector<RetentionDecision>* decisions);

}  // namespace offhost::storage
