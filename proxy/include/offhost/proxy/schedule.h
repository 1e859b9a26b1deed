// The scheduler's pure parts (docs/scheduler.md): calendar events (a subset of
// systemd.time's), backup windows, durations, staggered fulls and retry backoff. No clock is
// read here: every function takes the time it works on (unix seconds, UTC), so tests cover
// them exactly.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "offhost/common/status.h"
#include "offhost/storage/retention.h"

namespace offhost::proxy {

// "daily 22:00", "mon..fri 01:30", "sun,wed 03:00:30", "hourly", "hourly :15", "*-*-* 04:00".
// Times are UTC (the daemon documents it: set the schedule in UTC).
struct CalendarEvent {
  std::array<bool, 7> weekdays{};  // [0] = Monday ... [6] = Sunday; all true: every day
  bool hourly = false;             // every hour at `minute:second`
  int hour = 0, minute = 0, second = 0;
  std::string text;  // as written, for messages and listings
};

// InvalidArgument saying what is wrong and showing the accepted forms.
Result<CalendarEvent> ParseCalendarEvent(std::string_view text);

// The first time strictly after `after` (unix seconds) the event fires.
int64_t NextFiring(const CalendarEvent& event, int64_t after);

// "30s", "1m", "2h", "7d", "1h30m", or a bare number of seconds.
Result<std::chrono::seconds> ParseDuration(std::string_view text);

// A daily backup window "22:00-06:00" (UTC; it may wrap past midnight; seconds allowed).
struct BackupWindow {
  int start = 0, end = 0;  // seconds of the day
  std::string text;
};
Result<BackupWindow> ParseBackupWindow(std::string_view text);

// When the window that `t` is in ends; nullopt when `t` is outside the window.
std::optional<int64_t> WindowEnd(const BackupWindow& window, int64_t t);

// Staggered fulls: the day offset (0 .. period_days-1) of each of `count` VMs of a host (in
// their sorted order), spread evenly over the period: with count <= period every VM gets its
// own night; with more, no night gets more than ceil(count / period).
std::vector<int> StaggerOffsets(int count, int period_days);

// Whether a run at `t` is a VM's periodic full: the UTC day number of `t` modulo the period
// equals the VM's offset.
bool IsFullDay(int64_t t, int period_days, int offset);
// The first UTC day (unix seconds of its midnight) at or after `t`'s day that is a full day.
int64_t NextFullDay(int64_t t, int period_days, int offset);

// Retry backoff: `base`, doubling after each failed attempt (attempt 1 = the first retry),
// at most `cap`.
std::chrono::seconds RetryDelay(std::chrono::seconds base, int attempt,
                                std::chrono::seconds cap = std::chrono::hours(6));

// A VM's scheduling and retention policy, from the daemon's [[vm]] table.
struct VmPolicy {
  std::optional<CalendarEvent> schedule;              // unset: not scheduled
  int full_every_days = 0;                            // 0: no periodic full forced
  std::optional<BackupWindow> window;                 // unset: no window
  int retries = 0;                                    // attempts after the first
  std::chrono::seconds retry_backoff{60};             // before the first retry; doubles after each
  uint64_t bandwidth = 0;                             // bytes/s read from the source; 0: no limit
  std::optional<storage::RetentionPolicy> retention;  // unset: nothing is pruned
};

// "HH:MM:SS" of unix seconds, UTC; "YYYY-MM-DD HH:MM:SS" with `with_date`.
std::string FormatUtc(int64_t t, bool with_date = true);

}  // namespace offhost::proxy
