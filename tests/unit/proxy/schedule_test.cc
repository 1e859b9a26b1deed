// The scheduler's pure parts (proxy/schedule.h, proxy/slots.h): calendar events, windows,
// durations, staggered fulls, backoff, slots and bandwidth limits.
#include "offhost/proxy/schedule.h"

#include <gtest/gtest.h>

#include <ctime>
#include <set>
#include <thread>

#include "offhost/proxy/slots.h"

namespace offhost::proxy {
namespace {

int64_t Utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return timegm(&tm);
}

CalendarEvent Event(const char* text) {
  auto ev = ParseCalendarEvent(text);
  EXPECT_TRUE(ev.ok()) << text << ": " << ev.status().message();
  return ev.ok() ? *ev : CalendarEvent{};
}

TEST(CalendarEventTest, DailyFiresAtItsTimeEveryUtcDay) {
  CalendarEvent ev = Event("daily 22:00");
  EXPECT_EQ(NextFiring(ev, Utc(2026, 12, 7, 10)), Utc(2026, 12, 7, 22));
  // Strictly after: at the firing time, the next one is tomorrow.
  EXPECT_EQ(NextFiring(ev, Utc(2026, 12, 7, 22)), Utc(2026, 12, 8, 22));
  // Month and year ends, and a leap day.
  EXPECT_EQ(NextFiring(ev, Utc(2026, 12, 31, 23)), Utc(2027, 1, 1, 22));
  EXPECT_EQ(NextFiring(ev, Utc(2028, 2, 28, 23)), Utc(2028, 2, 29, 22));
  EXPECT_EQ(NextFiring(ev, Utc(2026, 2, 28, 23)), Utc(2026, 3, 1, 22));
  EXPECT_EQ(NextFiring(Event("03:15:30"), Utc(2026, 4, 30, 3, 15, 31)), Utc(2026, 5, 1, 3, 15, 30));
}

TEST(CalendarEventTest, WeekdayListsSkipOtherDays) {
  CalendarEvent ev = Event("mon..fri 01:30");
  // Friday 2026-12-04 after 01:30: the next is Monday 2026-12-07.
  EXPECT_EQ(NextFiring(ev, Utc(2026, 12, 4, 2)), Utc(2026, 12, 7, 1, 30));
  EXPECT_EQ(NextFiring(ev, Utc(2026, 12, 7, 0)), Utc(2026, 12, 7, 1, 30));
  CalendarEvent sun = Event("sun 03:00");
  EXPECT_EQ(NextFiring(sun, Utc(2026, 12, 7)), Utc(2026, 12, 13, 3));
  CalendarEvent wrap = Event("fri..mon 04:00");  // over the weekend
  EXPECT_EQ(NextFiring(wrap, Utc(2026, 12, 8)), Utc(2026, 12, 11, 4));
  EXPECT_EQ(NextFiring(wrap, Utc(2026, 12, 13, 5)), Utc(2026, 12, 14, 4));
  CalendarEvent list = Event("Tue,thursday 00:00");
  EXPECT_EQ(NextFiring(list, Utc(2026, 12, 8)), Utc(2026, 12, 10));
}

TEST(CalendarEventTest, HourlyAndMinuteOfEveryHour) {
  EXPECT_EQ(NextFiring(Event("hourly"), Utc(2026, 12, 31, 23, 0, 1)), Utc(2027, 1, 1));
  EXPECT_EQ(NextFiring(Event("*:15"), Utc(2026, 12, 7, 10, 20)), Utc(2026, 12, 7, 11, 15));
  EXPECT_EQ(NextFiring(Event("sat *:00"), Utc(2026, 12, 7)), Utc(2026, 12, 12));
}

TEST(CalendarEventTest, ErrorsShowTheAcceptedForms) {
  for (const char* bad : {"", "daily 25:00", "someday 01:00", "mon..fri", "daily 1:2:3:4",
                          "hourly 01:00", "daily 01:00 extra", "mon..xyz 01:00"}) {
    auto ev = ParseCalendarEvent(bad);
    ASSERT_FALSE(ev.ok()) << bad;
    EXPECT_NE(ev.status().message().find("daily 22:00"), std::string::npos)
        << ev.status().message();
  }
}

TEST(DurationTest, UnitsAndErrors) {
  EXPECT_EQ(ParseDuration("30s")->count(), 30);
  EXPECT_EQ(ParseDuration("1m")->count(), 60);
  EXPECT_EQ(ParseDuration("1h30m")->count(), 5400);
  EXPECT_EQ(ParseDuration("7d")->count(), 7 * 86400);
  EXPECT_EQ(ParseDuration("45")->count(), 45);
  for (const char* bad : {"", "1x", "h", "1h30", "-1m"})
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
}

TEST(BackupWindowTest, WindowsOverMidnightEndTheNextDay) {
  auto w = ParseBackupWindow("22:00-06:00");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(WindowEnd(*w, Utc(2026, 12, 31, 23)), Utc(2027, 1, 1, 6));
  EXPECT_EQ(WindowEnd(*w, Utc(2027, 1, 1, 5, 59, 59)), Utc(2027, 1, 1, 6));
  EXPECT_EQ(WindowEnd(*w, Utc(2027, 1, 1, 6)), std::nullopt);
  EXPECT_EQ(WindowEnd(*w, Utc(2027, 1, 1, 12)), std::nullopt);
  auto day = ParseBackupWindow("01:00-05:30:15");
  ASSERT_TRUE(day.ok());
  EXPECT_EQ(WindowEnd(*day, Utc(2026, 12, 7, 1)), Utc(2026, 12, 7, 5, 30, 15));
  EXPECT_EQ(WindowEnd(*day, Utc(2026, 12, 7, 0, 59)), std::nullopt);
  EXPECT_FALSE(ParseBackupWindow("22:00").ok());
  EXPECT_FALSE(ParseBackupWindow("22:00-22:00").ok());
}

TEST(StaggerTest, SixVmsOverSevenDaysEachGetTheirOwnNight) {
  std::vector<int> offsets = StaggerOffsets(6, 7);
  EXPECT_EQ(offsets, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(StaggerOffsets(2, 7), (std::vector<int>{0, 3}));
  EXPECT_EQ(StaggerOffsets(3, 7), (std::vector<int>{0, 2, 4}));
  // More VMs than days: no night gets more than ceil(count / period).
  std::vector<int> many = StaggerOffsets(10, 7);
  std::map<int, int> per_night;
  for (int o : many) per_night[o]++;
  EXPECT_EQ(per_night.size(), 7u);
  for (auto [night, n] : per_night) EXPECT_LE(n, 2) << night;
}

TEST(StaggerTest, EachVmHasOneFullDayPerPeriodAndNoTwoShareOne) {
  std::vector<int> offsets = StaggerOffsets(6, 7);
  int64_t start = Utc(2026, 12, 7);
  for (int day = 0; day < 28; ++day) {
    int fulls = 0;
    for (int o : offsets) fulls += IsFullDay(start + day * 86400 + 3600 * 22, 7, o) ? 1 : 0;
    EXPECT_LE(fulls, 1) << "day " << day;
  }
  for (int o : offsets) {
    int64_t next = NextFullDay(start + 3600, 7, o);
    EXPECT_TRUE(IsFullDay(next, 7, o));
    EXPECT_LT(next - start, 7 * 86400);
    EXPECT_EQ(next % 86400, 0);
  }
}

TEST(RetryDelayTest, DoublesFromTheBaseUpToTheCap) {
  using std::chrono::seconds;
  EXPECT_EQ(RetryDelay(seconds(60), 1), seconds(60));
  EXPECT_EQ(RetryDelay(seconds(60), 2), seconds(120));
  EXPECT_EQ(RetryDelay(seconds(60), 3), seconds(240));
  EXPECT_EQ(RetryDelay(seconds(60), 30, seconds(3600)), seconds(3600));
}

TEST(SlotLimiterTest, NeverMoreThanTheHostLimitAndOthersWaitInOrder) {
  SlotLimiter limiter({.total = 0, .per_datastore = 0, .per_host_default = 2});
  std::atomic<int> running{0}, peak{0}, waited{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      auto slot = limiter.Acquire("kvm1", "main", nullptr, [&](const std::string& why) {
        EXPECT_EQ(why, "host kvm1 runs 2 of 2 backups at once");
        ++waited;
      });
      ASSERT_TRUE(slot.ok());
      int now = ++running;
      int p = peak.load();
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      --running;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(peak.load(), 2);
  EXPECT_GE(waited.load(), 1);
  EXPECT_EQ(limiter.running_on_host("kvm1"), 0);
}

TEST(SlotLimiterTest, DatastoreAndTotalLimitsAndCancel) {
  SlotLimiter limiter({.total = 3, .per_datastore = 1, .per_host_default = 0});
  auto a = limiter.Acquire("h1", "ds1", nullptr, nullptr);
  ASSERT_TRUE(a.ok());
  std::atomic<bool> cancel{false};
  std::string why;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    cancel = true;
  });
  auto b = limiter.Acquire("h2", "ds1", &cancel, [&](const std::string& w) { why = w; });
  canceller.join();
  EXPECT_EQ(b.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(why, "datastore ds1 runs 1 of 1 backups at once");
  auto c = limiter.Acquire("h2", "ds2", nullptr, nullptr);
  auto d = limiter.Acquire("h3", "ds3", nullptr, nullptr);
  ASSERT_TRUE(c.ok() && d.ok());
  cancel = false;
  std::thread canceller2([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    cancel = true;
  });
  auto e = limiter.Acquire("h4", "ds4", &cancel, [&](const std::string& w) { why = w; });
  canceller2.join();
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(why, "offhostd runs 3 of 3 backups at once");
}

TEST(RateLimiterTest, KeepsTheAverageRate) {
  RateLimiter limit(4 << 20);  // 4 MiB/s
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(limit.Take(1 << 20, nullptr).ok());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // 12 MiB at 4 MiB/s, less at most the one-second burst credit.
  EXPECT_GE(secs, 1.7);  // the last MiB may start at 11 / 4 - 1 s
  EXPECT_LE(secs, 4.0);
  EXPECT_EQ(*ParseBandwidth("50M"), 50ull << 20);
  EXPECT_EQ(*ParseBandwidth("0"), 0u);
  EXPECT_FALSE(ParseBandwidth("fast").ok());
}

}  // namespace
}  // namespace offhost::proxy
