// Calendar events, windows, durations, stagger and backoff (schedule.h, docs/scheduler.md).
#include "offhost/proxy/schedule.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <sstream>

namespace offhost::proxy {
namespace {

constexpr int64_t kDay = 86400;
constexpr const char* kForms =
    "write e.g. \"daily 22:00\", \"mon..fri 01:30\", \"sun,wed 03:00:30\", \"hourly\" or "
    "\"*:15\" (times are UTC)";
constexpr const char* kWeekdays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Monday = 0. 1970-01-01 (day 0) was a Thursday.
int WeekdayOfDay(int64_t day) { return static_cast<int>(((day + 3) % 7 + 7) % 7); }

bool ParseInt(std::string_view s, int lo, int hi, int* out) {
  if (s.empty() || s.size() > 2) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size() && *out >= lo && *out <= hi;
}

// "HH:MM" or "HH:MM:SS"; `hour` may be "*" when `wild_hour` is given.
bool ParseClock(std::string_view s, int* h, int* m, int* sec, bool* wild_hour) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t colon; (colon = s.find(':', start)) != std::string_view::npos; start = colon + 1) {
    parts.push_back(s.substr(start, colon - start));
  }
  parts.push_back(s.substr(start));
  if (parts.size() < 2 || parts.size() > 3) return false;
  *sec = 0;
  if (wild_hour != nullptr && parts[0] == "*") {
    *wild_hour = true;
    *h = 0;
  } else if (!ParseInt(parts[0], 0, 23, h)) {
    return false;
  }
  if (!ParseInt(parts[1], 0, 59, m)) return false;
  return parts.size() == 2 || ParseInt(parts[2], 0, 59, sec);
}

int WeekdayIndex(std::string_view name) {
  std::string n = Lower(name);
  for (int i = 0; i < 7; ++i) {
    if (n.size() >= 3 && std::string(kWeekdays[i]) == n.substr(0, 3)) {
      static const char* kFull[] = {"monday", "tuesday",  "wednesday", "thursday",
                                    "friday", "saturday", "sunday"};
      if (n.size() == 3 || n == kFull[i]) return i;
    }
  }
  return -1;
}

// "mon..fri", "sat,sun", "mon,wed..fri".
bool ParseWeekdays(std::string_view s, std::array<bool, 7>* days) {
  days->fill(false);
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string_view item =
        s.substr(start, comma == std::string_view::npos ? s.npos : comma - start);
    size_t dots = item.find("..");
    int a = WeekdayIndex(item.substr(0, dots));
    int b = dots == std::string_view::npos ? a : WeekdayIndex(item.substr(dots + 2));
    if (a < 0 || b < 0) return false;
    for (int d = a;; d = (d + 1) % 7) {  // "fri..mon" wraps over the weekend
      (*days)[d] = true;
      if (d == b) break;
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return true;
}

}  // namespace

Result<CalendarEvent> ParseCalendarEvent(std::string_view text) {
  CalendarEvent ev;
  ev.text = std::string(text);
  ev.weekdays.fill(true);
  std::istringstream in{std::string(text)};
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  auto bad = [&](const std::string& what) {
    return Status::InvalidArgument("calendar event \"" + std::string(text) + "\": " + what + "; " +
                                   kForms);
  };
  if (words.empty() || words.size() > 2) return bad("expected [DAYS] [TIME]");
  std::string first = Lower(words[0]);
  size_t next = 1;
  if (first == "hourly") {
    ev.hourly = true;
  } else if (first == "daily" || first == "*-*-*") {
  } else if (first == "weekly") {
    ev.weekdays.fill(false);
    ev.weekdays[0] = true;
  } else if (first.find(':') == std::string::npos) {
    if (!ParseWeekdays(first, &ev.weekdays)) {
      return bad("\"" + words[0] + "\" is not a day list (mon..sun, \"mon..fri\", \"sat,sun\")");
    }
  } else {
    next = 0;  // only a time: every day
  }
  if (next < words.size()) {
    if (ev.hourly) return bad("\"hourly\" takes no time; write \"*:MM\" for another minute");
    bool wild = false;
    if (!ParseClock(words[next], &ev.hour, &ev.minute, &ev.second, &wild)) {
      return bad("\"" + words[next] + "\" is not a time (HH:MM or HH:MM:SS, or *:MM hourly)");
    }
    ev.hourly = wild;
    ++next;
  } else if (next == 1 && first != "hourly" && first != "daily" && first != "weekly" &&
             first != "*-*-*") {
    return bad("a day list needs a time, e.g. \"" + words[0] + " 01:30\"");
  }
  if (next != words.size()) return bad("unexpected \"" + words[next] + "\"");
  return ev;
}

int64_t NextFiring(const CalendarEvent& ev, int64_t after) {
  int64_t step = ev.hourly ? 3600 : kDay;
  int64_t base = FloorDiv(after, step);
  int64_t offset = (ev.hourly ? 0 : ev.hour * 3600) + ev.minute * 60 + ev.second;
  // Eight days of candidates always hold a match: at least one weekday is allowed.
  for (int64_t k = 0; k <= 8 * (kDay / step); ++k) {
    int64_t t = (base + k) * step + offset;
    if (t > after && ev.weekdays[WeekdayOfDay(FloorDiv(t, kDay))]) return t;
  }
  return after + kDay;  // not reached: a parsed event allows some weekday
}

Result<std::chrono::seconds> ParseDuration(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("\"" + std::string(text) +
                                   "\" is not a duration; write e.g. \"30s\", \"1m\", \"2h\", "
                                   "\"7d\" or \"1h30m\"");
  };
  if (text.empty()) return bad();
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data() + i, text.data() + text.size(), n);
    if (ec != std::errc() || n < 0 || n > 100000000) return bad();
    i = end - text.data();
    int64_t unit = 1;
    if (i < text.size()) {
      switch (text[i]) {
        case 's':
          unit = 1;
          break;
        case 'm':
          unit = 60;
          break;
        case 'h':
          unit = 3600;
          break;
        case 'd':
          unit = kDay;
          break;
        case 'w':
          unit = 7 * kDay;
          break;
        default:
          return bad();
      }
      ++i;
    } else if (total != 0) {
      return bad();  // "1h30": the unit of 30 is not said
    }
    total += n * unit;
  }
  return std::chrono::seconds(total);
}

Result<BackupWindow> ParseBackupWindow(std::string_view text) {
  BackupWindow w;
  w.text = std::string(text);
  size_t dash = text.find('-');
  int h1, m1, s1, h2, m2, s2;
  if (dash == std::string_view::npos || !ParseClock(text.substr(0, dash), &h1, &m1, &s1, nullptr) ||
      !ParseClock(text.substr(dash + 1), &h2, &m2, &s2, nullptr)) {
    return Status::InvalidArgument("\"" + std::string(text) +
                                   "\" is not a window; write START-END as \"22:00-06:00\" "
                                   "(UTC; it may span midnight)");
  }
  w.start = h1 * 3600 + m1 * 60 + s1;
  w.end = h2 * 3600 + m2 * 60 + s2;
  if (w.start == w.end) {
    return Status::InvalidArgument("window \"" + std::string(text) +
                                   "\" starts where it ends; leave `window` out for no window");
  }
  return w;
}

std::optional<int64_t> WindowEnd(const BackupWindow& w, int64_t t) {
  int64_t day = FloorDiv(t, kDay) * kDay;
  int64_t sod = t - day;
  if (w.start < w.end) {
    if (sod >= w.start && sod < w.end) return day + w.end;
    return std::nullopt;
  }
  if (sod >= w.start) return day + kDay + w.end;  // spans midnight: ends tomorrow
  if (sod < w.end) return day + w.end;
  return std::nullopt;
}

std::vector<int> StaggerOffsets(int count, int period_days) {
  std::vector<int> out;
  if (period_days <= 0) return std::vector<int>(std::max(count, 0), 0);
  for (int i = 0; i < count; ++i) {
    out.push_back(count <= period_days
                      ? static_cast<int>(static_cast<int64_t>(i) * period_days / count)
                      : i % period_days);
  }
  return out;
}

bool IsFullDay(int64_t t, int period_days, int offset) {
  if (period_days <= 0) return false;
  int64_t day = FloorDiv(t, kDay);
  return ((day % period_days) + period_days) % period_days == offset;
}

int64_t NextFullDay(int64_t t, int period_days, int offset) {
  int64_t midnight = FloorDiv(t, kDay) * kDay;
  for (int k = 0; k < std::max(period_days, 1); ++k) {
    if (IsFullDay(midnight + k * kDay, period_days, offset)) return midnight + k * kDay;
  }
  return midnight;
}

std::chrono::seconds RetryDelay(std::chrono::seconds base, int attempt, std::chrono::seconds cap) {
  std::chrono::seconds d = base;
  for (int i = 1; i < attempt && d < cap; ++i) d *= 2;
  return std::min(d, cap);
}

std::string FormatUtc(int64_t t, bool with_date) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, with_date ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &tm);
  return buf;
}

}  // namespace offhost::proxy
