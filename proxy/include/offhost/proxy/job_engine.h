// offhostd's jobs: long operations (backup, verify, restores) run on their own thread, with a
// state, progress, an event log clients re-attach to by sequence number, and a result. Every
// job is kept in a RocksDB database in the daemon's state folder, so a restart still shows it;
// a job that was queued or running when the daemon stopped is found at the next start and
// marked INTERRUPTED with leftovers_pending: the daemon then releases what it may have left
// (SettleLeftovers says so on the job); the drivers also clean a crashed backup's leftovers
// at their next Take.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::proxy {

// The values are those of offhost.v1.JobState.
enum class JobState {
  kQueued = 1,
  kRunning = 2,
  kCancelling = 3,
  kSucceeded = 4,
  kFailed = 5,
  kCancelled = 6,
  kInterrupted = 7,
};
bool IsTerminal(JobState state);

struct JobProgress {
  uint64_t total_bytes = 0, done_bytes = 0;
  uint64_t bytes_read = 0, new_bytes = 0;  // backup
  uint64_t total_items = 0, done_items = 0;
  int64_t update_ms = 0;  // unix milliseconds
  bool operator==(const JobProgress&) const = default;
};

// One step of a job's life, kept for as long as the job: "queued", "waiting" (for a backup
// slot), "slot" (got one), "released" (gave it back), "attempt_failed", "retry_wait",
// "running", "warning", "pruned", and the terminal state ("succeeded", "failed", ...).
struct TimelineEntry {
  int64_t time_ms = 0;
  std::string what;
  std::string detail;  // for humans: why it waits, what failed, what was kept
  bool operator==(const TimelineEntry&) const = default;
};

struct JobEvent {
  enum class Kind { kStateChange = 1, kProgress = 2, kWarning = 3, kTimeline = 4 };
  uint64_t sequence = 0;  // 1, 2, ... within the job
  int64_t time_ms = 0;
  Kind kind = Kind::kStateChange;
  JobState state = JobState::kQueued;  // kStateChange: the new state
  JobProgress progress;                // kProgress: cumulative counters
  std::string message;                 // kWarning: the warning
  TimelineEntry entry;                 // kTimeline: the new entry
};

struct JobRecord {
  std::string id;    // time-sortable (UUIDv7 form)
  std::string type;  // "backup", "verify", ...: the caller's words
  std::string spec;  // opaque to the engine (the daemon stores the request's proto)
  std::string request_id;
  std::string creator, canceller;  // principal names
  std::map<std::string, std::string> labels;
  // Filter keys the caller chooses to index by ("vm", "datastore"), e.g. for ListJobs.
  std::map<std::string, std::string> keys;
  JobState state = JobState::kQueued;
  int64_t create_ms = 0, start_ms = 0, end_ms = 0;
  JobProgress progress;
  std::string result;  // opaque; set when it succeeded
  StatusCode error_code = StatusCode::kOk;
  std::string error_message;
  std::vector<std::string> warnings;
  uint64_t last_sequence = 0;
  // The engine's own: sequences up to this one may have been sent to clients. Stored durably
  // before they are, so that after a crash (when the newest events were not stored) the
  // INTERRUPTED event still comes after every sequence a client saw.
  uint64_t reserved_sequence = 0;
  // State changes are all kept; of progress events only the newest (they are cumulative).
  std::vector<JobEvent> events;
  // What the job does within its state, when the job says ("waiting_for_slot",
  // "retry_wait"); empty otherwise.
  std::string phase;
  std::vector<TimelineEntry> timeline;
  // Set when Open() marked the job INTERRUPTED: what it created outside the daemon (a
  // hypervisor's snapshot, an export) may still be there. Cleared by SettleLeftovers.
  bool leftovers_pending = false;
};

// What a running job sees of the engine.
class JobControl {
 public:
  virtual ~JobControl() = default;
  // Set by Cancel(id) and at shutdown; the job should stop soon and return Cancelled.
  virtual const std::atomic<bool>& cancel_flag() const = 0;
  // Cumulative counters; logged as an event at most once a second, stored every few seconds.
  virtual void SetProgress(const JobProgress& progress) = 0;
  // Kept in warnings, sent as a warning event and logged (JobEngineOptions::on_warning).
  virtual void Warn(const std::string& message) = 0;
  // Sets JobRecord::phase ("" clears it).
  virtual void SetPhase(const std::string& phase) = 0;
  // Appends to the job's timeline (stored durably at once) and sends it as an event.
  virtual void Note(const std::string& what, const std::string& detail) = 0;
};

// The job's work: its result blob, or why it failed.
using JobFn = std::function<Result<std::string>(JobControl&)>;
// Runs while the job is still QUEUED (waiting for a slot); an error ends the job with it.
using JobAdmitFn = std::function<Status(JobControl&)>;

struct JobFilter {
  std::vector<std::string> types;
  std::vector<JobState> states;
  std::map<std::string, std::string> keys, labels;  // all must match
  std::string creator;
  int64_t create_from_ms = 0, create_before_ms = 0;  // 0: unbounded
};

struct JobEngineOptions {
  std::string state_dir;  // made when missing; holds jobs.rocksdb
  // Ended jobs older than this are deleted at Open (request ids are remembered as long).
  std::chrono::hours retention{24 * 7};
  // Called with the job id and the message of each warning (the daemon logs it).
  std::function<void(const std::string&, const std::string&)> on_warning;
};

class JobEngine {
 public:
  // Opens (creating) the database and marks the jobs a previous run left queued or running
  // INTERRUPTED.
  static Result<std::unique_ptr<JobEngine>> Open(const JobEngineOptions& options);
  // Shutdown(), then closes the database.
  ~JobEngine();

  // Refuses new jobs and ends watches (Unavailable), cancels every running job and waits for
  // it: they end INTERRUPTED, having released what they held. Idempotent.
  void Shutdown();

  // Records `job` (id, times, state and events are set here) and runs `fn` on a new thread;
  // with `admit`, the job stays QUEUED until `admit` returns (e.g. when a slot is free).
  // With a request_id already used by the same creator: that job when the type and spec are
  // the same (nothing is started), else AlreadyExists. Unavailable while shutting down.
  Result<JobRecord> Start(JobRecord job, JobFn fn, JobAdmitFn admit = nullptr);
  // Asks the job to stop; a job that ended is returned unchanged.
  Result<JobRecord> Cancel(const std::string& id, const std::string& canceller);
  Result<JobRecord> Get(const std::string& id) const;
  // Newest first.
  std::vector<JobRecord> List(const JobFilter& filter) const;

  // Calls `on_event` with each event after `after_sequence`, then with new ones as they
  // happen, until the job's terminal event was sent (OK). `stop` is asked about once a second
  // and ends the watch with Cancelled when true (the client went away); the engine shutting
  // down ends it with Unavailable. `on_event` gets the job as it is when the event is sent.
  Status Watch(const std::string& id, uint64_t after_sequence,
               const std::function<bool(const JobEvent&, const JobRecord&)>& on_event,
               const std::function<bool()>& stop) const;

  // Interrupted jobs whose leftovers were not released yet (leftovers_pending), oldest first.
  std::vector<JobRecord> PendingLeftovers() const;
  // Records the outcome of releasing a job's leftovers: `note` (when not empty) is added to
  // its warnings; `released` clears leftovers_pending (false: still pending, e.g. the host
  // did not answer; the next start tries again).
  Status SettleLeftovers(const std::string& id, bool released, const std::string& note);

  JobEngine(const JobEngine&) = delete;
  JobEngine& operator=(const JobEngine&) = delete;

 private:
  struct Impl;
  explicit JobEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace offhost::proxy
