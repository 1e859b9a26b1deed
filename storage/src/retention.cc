// Retention policies (docs/retention.md).
#include "offhost/storage/retention.h"

#include <algorithm>
#include <ctime>
#include <set>

namespace offhost::storage {
namespace {

// One period rule: how many periods to keep and how a snapshot's time names its period.
struct PeriodRule {
  const char* name;
  int count;
  const char* format;  // strftime format of the period key, in UTC
};

std::string PeriodKey(int64_t when, const char* format) {
  std::time_t t = static_cast<std::time_t>(when);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

}  // namespace

Status ValidateRetentionPolicy(const RetentionPolicy& p) {
  bool keeps = false;
  for (int n :
       {p.keep_last, p.keep_hourly, p.keep_daily, p.keep_weekly, p.keep_monthly, p.keep_yearly}) {
    if (n < 0) return Status::InvalidArgument("retention counts cannot be negative");
    keeps = keeps || n > 0;
  }
  if (!keeps) {
    return Status::InvalidArgument(
        "a retention policy must keep something: give at least one of --keep-last, "
        "--keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly");
  }
  return Status::OK();
}

std::vector<RetentionDecision> ApplyRetention(std::vector<SnapshotRecord> snapshots,
                                              const RetentionPolicy& policy) {
  // Newest first by id, the order "latest" and the next incremental's base use: ids only
  // grow, where a start time can go back (a clock stepped back, proxies with skewed clocks).
  std::sort(snapshots.begin(), snapshots.end(),
            [](const SnapshotRecord& a, const SnapshotRecord& b) { return a.id > b.id; });
  std::vector<RetentionDecision> out;
  for (auto& s : snapshots) out.push_back({std::move(s), false, {}});
  auto keep = [&](RetentionDecision& d, std::string why) {
    d.keep = true;
    d.reasons.push_back(std::move(why));
  };
  // The newest snapshot of each VM identity is the base of its next incremental backup
  // (two VMs may share a name: the base is looked up by UUID).
  std::set<std::string> based;
  for (auto& d : out) {
    if (based.insert(d.snapshot.meta.vm_uuid).second) keep(d, "base of the next incremental");
  }
  for (int i = 0; i < policy.keep_last && i < static_cast<int>(out.size()); ++i) {
    keep(out[i], "last " + std::to_string(i + 1));
  }
  const PeriodRule rules[] = {{"hourly", policy.keep_hourly, "%Y-%m-%dT%H"},
                              {"daily", policy.keep_daily, "%Y-%m-%d"},
                              {"weekly", policy.keep_weekly, "%G-W%V"},
                              {"monthly", policy.keep_monthly, "%Y-%m"},
                              {"yearly", policy.keep_yearly, "%Y"}};
  for (const PeriodRule& rule : rules) {
    int left = rule.count;
    std::string last_key;
    for (auto& d : out) {
      if (left == 0) break;
      std::string key = PeriodKey(d.snapshot.started, rule.format);
      if (key == last_key) continue;  // an older snapshot of a period already kept
      last_key = key;
      keep(d, std::string(rule.name) + " " + key);
      --left;
    }
  }
  return out;
}

void KeepSnapshotsInUse(const std::vector<SnapshotRecord>& in_use,
                        std::vector<RetentionDecision>* decisions) {
  for (auto& d : *decisions) {
    for (const auto& s : in_use) {
      if (d.keep || s.vm != d.snapshot.vm || s.id != d.snapshot.id) continue;
      d.keep = true;
      d.reasons = {"in use by a restore, mount or export (the next prune removes it)"};
    }
  }
}

}  // namespace offhost::storage
