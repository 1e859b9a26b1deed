// Retention policies on synthetic histories: what a policy keeps, worked out by hand from the
// calendar, not by the code under test.
#include "offhost/storage/retention.h"

#include <gtest/gtest.h>

#include <ctime>
#include <set>

namespace offhost::storage {
namespace {

int64_t Utc(int year, int month, int day, int hour = 1, int minute = 30) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  return timegm(&tm);
}

SnapshotRecord At(int64_t t) {
  SnapshotRecord s;
  s.vm = "web01";
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char id[32];
  std::strftime(id, sizeof id, "%Y-%m-%dT%H:%M:%SZ", &tm);
  s.id = id;
  s.started = t;
  s.finished = t + 60;
  return s;
}

// One backup a day at 01:30 UTC through 2026, given oldest first.
std::vector<SnapshotRecord> DailyYear2026() {
  std::vector<SnapshotRecord> out;
  for (int64_t t = Utc(2026, 1, 1); t <= Utc(2026, 12, 31); t += 86400) out.push_back(At(t));
  return out;
}

std::set<std::string> Kept(const std::vector<RetentionDecision>& decisions) {
  std::set<std::string> ids;
  for (const auto& d : decisions) {
    if (d.keep) ids.insert(d.snapshot.id.substr(0, 10));
  }
  return ids;
}

TEST(RetentionTest, AYearOfDailyBackupsKeepsExactlyWhatThePolicySays) {
  auto history = DailyYear2026();
  ASSERT_EQ(history.size(), 365u);
  RetentionPolicy p;
  p.keep_last = 3;     // Dec 29-31
  p.keep_daily = 7;    // Dec 25-31
  p.keep_weekly = 4;   // ISO weeks 53 (Dec 28-31), 52, 51, 50: their Sundays / Dec 31
  p.keep_monthly = 6;  // the last day of Jul..Dec
  p.keep_yearly = 1;   // Dec 31
  auto d = ApplyRetention(history, p);
  ASSERT_EQ(d.size(), 365u);
  EXPECT_EQ(Kept(d), (std::set<std::string>{"2026-07-31", "2026-08-31", "2026-09-30", "2026-10-31",
                                            "2026-11-30", "2026-12-13", "2026-12-20", "2026-12-25",
                                            "2026-12-26", "2026-12-27", "2026-12-28", "2026-12-29",
                                            "2026-12-30", "2026-12-31"}));
  // Newest first, and the newest is kept by every rule.
  EXPECT_EQ(d.front().snapshot.id, "2026-12-31T01:30:00Z");
  EXPECT_EQ(d.front().reasons,
            (std::vector<std::string>{"last 1", "daily 2026-12-31", "weekly 2026-W53",
                                      "monthly 2026-12", "yearly 2026"}));
  EXPECT_EQ(d.back().snapshot.id, "2026-01-01T01:30:00Z");
  EXPECT_FALSE(d.back().keep);
  EXPECT_TRUE(d.back().reasons.empty());
}

TEST(RetentionTest, PeriodsCountOnlyPeriodsThatHaveBackups) {
  // Backups on Mar 1, Mar 5 (two), Mar 9: keep-daily 2 keeps the newest of Mar 9 and Mar 5.
  std::vector<SnapshotRecord> h = {At(Utc(2026, 3, 1)), At(Utc(2026, 3, 5, 1)),
                                   At(Utc(2026, 3, 5, 13)), At(Utc(2026, 3, 9))};
  RetentionPolicy p;
  p.keep_daily = 2;
  auto d = ApplyRetention(h, p);
  std::set<std::string> kept;
  for (const auto& x : d) {
    if (x.keep) kept.insert(x.snapshot.id);
  }
  EXPECT_EQ(kept, (std::set<std::string>{"2026-03-09T01:30:00Z", "2026-03-05T13:30:00Z"}));
}

TEST(RetentionTest, HourlyKeepsTheNewestOfEachHour) {
  std::vector<SnapshotRecord> h;
  for (int hour = 8; hour <= 11; ++hour) {
    for (int minute : {0, 20, 40}) h.push_back(At(Utc(2026, 6, 1, hour, minute)));
  }
  RetentionPolicy p;
  p.keep_hourly = 3;
  auto d = ApplyRetention(h, p);
  std::set<std::string> kept;
  for (const auto& x : d) {
    if (x.keep) kept.insert(x.snapshot.id);
  }
  EXPECT_EQ(kept, (std::set<std::string>{"2026-06-01T11:40:00Z", "2026-06-01T10:40:00Z",
                                         "2026-06-01T09:40:00Z"}));
}

TEST(RetentionTest, KeepLastAloneAndMoreThanThereAre) {
  auto history = DailyYear2026();
  RetentionPolicy p;
  p.keep_last = 1000;
  for (const auto& x : ApplyRetention(history, p)) EXPECT_TRUE(x.keep);
  p.keep_last = 1;
  auto d = ApplyRetention(history, p);
  EXPECT_EQ(Kept(d), (std::set<std::string>{"2026-12-31"}));
}

TEST(RetentionTest, APolicyThatKeepsNothingIsRefused) {
  RetentionPolicy p;
  Status st = ValidateRetentionPolicy(p);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--keep-last"), std::string::npos);
  p.keep_daily = -1;
  EXPECT_FALSE(ValidateRetentionPolicy(p).ok());
  p.keep_daily = 7;
  EXPECT_TRUE(ValidateRetentionPolicy(p).ok());
}

}  // namespace
}  // namespace offhost::storage
