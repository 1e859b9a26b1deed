#include "cli_util.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>

namespace offhost::cli {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int ReportError(const Status& st) {
  std::cerr << "offhost: error: " << st.message() << "\n";
  return st.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
}

std::string HumanBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

std::string HumanRate(double bps) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB/s", bps / 1e6);
  return buf;
}

std::string HumanDuration(double seconds) {
  char buf[32];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  } else {
    auto s = static_cast<long>(seconds);
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  }
  return buf;
}

std::string FormatTime(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

bool StdoutIsTerminal() { return ::isatty(STDOUT_FILENO) == 1; }

void PrintTable(const std::vector<std::string>& headers,
                const std::vector<std::vector<std::string>>& rows,
                const std::vector<size_t>& right) {
  std::vector<size_t> width(headers.size());
  for (size_t c = 0; c < headers.size(); ++c) width[c] = headers[c].size();
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size() && c < width.size(); ++c)
      width[c] = std::max(width[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (size_t c = 0; c < width.size(); ++c) {
      const std::string cell = c < r.size() ? r[c] : "";
      std::string pad(width[c] - cell.size(), ' ');
      bool is_right = std::find(right.begin(), right.end(), c) != right.end();
      out += (c ? "  " : "") + (is_right ? pad + cell : cell + (c + 1 < width.size() ? pad : ""));
    }
    std::cout << out << "\n";
  };
  line(headers);
  for (const auto& r : rows) line(r);
}

ProgressBar::ProgressBar(std::string label, std::function<std::pair<uint64_t, uint64_t>()> read)
    : label_(std::move(label)), read_(std::move(read)), start_(Now()) {
  if (!StdoutIsTerminal()) return;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    do {
      lock.unlock();
      Draw(false);
      lock.lock();
    } while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stop_; }));
  });
}

ProgressBar::~ProgressBar() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_one();  // the bar goes at once, not at its next redraw
  thread_.join();
  std::printf("\r\033[K");  // the summary line replaces the bar
  std::fflush(stdout);
}

void ProgressBar::Draw(bool) {
  auto [done, total] = read_();
  double elapsed = Now() - start_;
  double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 0;
  constexpr int kWidth = 30;
  int fill = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(fill), '=');
  if (fill < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - fill - 1), ' ');
  std::string eta =
      rate > 0 && total > done ? HumanDuration(static_cast<double>(total - done) / rate) : "-";
  std::printf("\r\033[K%s [%s] %3.0f%% %s / %s  %s  ETA %s", label_.c_str(), bar.c_str(),
              frac * 100, HumanBytes(done).c_str(), HumanBytes(total).c_str(),
              HumanRate(rate).c_str(), eta.c_str());
  std::fflush(stdout);
}

std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace offhost::cli
