// Shared helpers of the offhost CLI: exit codes, error output, sizes, progress bar.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::cli {

// Documented in README.md ("Exit codes").
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,       // the operation failed; the message says why
  kExitUsage = 2,        // bad command line
  kExitDamage = 3,       // verify found damaged or missing chunks
  kExitAuth = 4,         // offhostd refused the credentials or the role
  kExitUnavailable = 5,  // offhostd could not be reached
};

// Prints "offhost: error: <message>" to stderr and returns the exit code for `st`.
int ReportError(const Status& st);

std::string HumanBytes(uint64_t bytes);          // "1.50 GiB"
std::string HumanRate(double bytes_per_second);  // "350.2 MB/s"
std::string HumanDuration(double seconds);       // "0:03:21" or "5.8 s"
std::string FormatTime(int64_t unix_seconds);    // "2026-11-25 01:30:49 UTC"

bool StdoutIsTerminal();

// A guest's name as shown on a terminal: control characters as \xNN, so a hostile name
// (escape sequences, a newline faking another line) cannot drive the operator's terminal.
// JSON output carries names unchanged.
std::string Printable(const std::string& s);

// Prints rows under headers with columns aligned; columns in `right` are right-aligned.
void PrintTable(const std::vector<std::string>& headers,
                const std::vector<std::vector<std::string>>& rows,
                const std::vector<size_t>& right);

// A one-line progress bar on stdout, redrawn a few times a second while it lives, shown
// only when stdout is a terminal. `read` returns (done, total) bytes.
class ProgressBar {
 public:
  ProgressBar(std::string label, std::function<std::pair<uint64_t, uint64_t>()> read);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

 private:
  void Draw(bool final);
  std::string label_;
  std::function<std::pair<uint64_t, uint64_t>()> read_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread thread_;
  double start_;
};

}  // namespace offhost::cli
