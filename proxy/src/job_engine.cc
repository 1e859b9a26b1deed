#include "offhost/proxy/job_engine.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include "job_store.h"

namespace offhost::proxy {
namespace {

constexpr char kStoppedReason[] = "offhostd stopped while it ran";
constexpr int64_t kProgressEventMs = 1000;      // at most one progress event a second...
constexpr int64_t kProgressHeartbeatMs = 9000;  // ...and one at least this often (contract: 10 s)
constexpr int64_t kProgressStoreMs = 5000;      // progress is stored at most this often
// Sequences are reserved (stored durably) this many at a time: one synced write per this
// many events.
constexpr uint64_t kSequenceReserve = 1000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A UUIDv7: 48 bits of unix milliseconds first, so ids sort by creation time.
std::string NewJobId() {
  static std::mutex mu;
  static std::mt19937_64 random{std::random_device{}()};
  uint64_t ms = static_cast<uint64_t>(NowMs());
  uint64_t a, b;
  {
    std::lock_guard lock(mu);
    a = random(), b = random();
  }
  char id[64];
  std::snprintf(id, sizeof id, "%08llx-%04llx-7%03llx-%04llx-%012llx",
                static_cast<unsigned long long>(ms >> 16),
                static_cast<unsigned long long>(ms & 0xffff),
                static_cast<unsigned long long>(a & 0xfff),
                static_cast<unsigned long long>(0x8000 | ((a >> 12) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return id;
}

JobRecord WithoutEvents(const JobRecord& job) {
  JobRecord copy = job;
  copy.events.clear();
  return copy;
}

bool Matches(const JobRecord& job, const JobFilter& f) {
  auto any = [](const auto& list, const auto& value) {
    return list.empty() || std::find(list.begin(), list.end(), value) != list.end();
  };
  auto all = [](const std::map<std::string, std::string>& wanted,
                const std::map<std::string, std::string>& have) {
    for (const auto& [k, v] : wanted) {
      auto it = have.find(k);
      if (it == have.end() || it->second != v) return false;
    }
    return true;
  };
  return any(f.types, job.type) && any(f.states, job.state) && all(f.keys, job.keys) &&
         all(f.labels, job.labels) && (f.creator.empty() || f.creator == job.creator) &&
         job.create_ms >= f.create_from_ms &&
         (f.create_before_ms == 0 || job.create_ms < f.create_before_ms);
}

const char* StateWord(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kCancelling:
      return "cancelling";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
    case JobState::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

}  // namespace

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled || state == JobState::kInterrupted;
}

struct JobEngine::Impl {
  struct Job {
    JobRecord record;
    std::atomic<bool> cancel{false};
    std::thread thread;
    int64_t last_progress_event_ms = 0, last_store_ms = 0;
  };

  JobEngineOptions options;
  std::unique_ptr<JobStore> store;
  mutable std::mutex mu;
  mutable std::condition_variable changed;  // a job got an event, or shutdown began
  std::map<std::string, std::shared_ptr<Job>> jobs;
  bool shutting_down = false;

  // With `mu` held. A failed write is not fatal to the job: it is kept in memory and
  // shown, and the next change writes the whole record again.
  void Store(Job& job, bool synced) {
    job.last_store_ms = NowMs();
    Status st = store->Put(job.record, synced);
    if (!st.ok()) job.record.warnings.push_back("the job could not be stored: " + st.message());
  }

  // With `mu` held. Progress events are cumulative, so an older one is dropped from the log
  // when a newer one comes: a re-attaching client then gets the latest counters only.
  // Whether it stored the job, synced (clients see the event only once `mu` is released).
  bool Append(Job& job, JobEvent event) {
    event.sequence = ++job.record.last_sequence;
    event.time_ms = NowMs();
    if (event.kind == JobEvent::Kind::kProgress) {
      std::erase_if(job.record.events,
                    [](const JobEvent& e) { return e.kind == JobEvent::Kind::kProgress; });
    }
    job.record.events.push_back(event);
    changed.notify_all();
    if (event.sequence <= job.record.reserved_sequence) return false;
    job.record.reserved_sequence = event.sequence + kSequenceReserve;
    Store(job, /*synced=*/true);
    return true;
  }

  // With `mu` held. Not stored: the caller stores the job.
  void AddNote(Job& job, const std::string& what, const std::string& detail) {
    TimelineEntry entry{NowMs(), what, detail};
    job.record.timeline.push_back(entry);
    JobEvent event;
    event.kind = JobEvent::Kind::kTimeline;
    event.entry = entry;
    Append(job, event);
  }

  // With `mu` held.
  void SetState(Job& job, JobState state) {
    job.record.state = state;
    int64_t now = NowMs();
    if (state == JobState::kRunning) job.record.start_ms = now;
    if (IsTerminal(state)) {
      job.record.end_ms = now;
      job.record.phase.clear();
    }
    // In the timeline, but not an event of its own: the state change event says it.
    job.record.timeline.push_back(
        {now, StateWord(state), IsTerminal(state) ? job.record.error_message : ""});
    JobEvent event;
    event.kind = JobEvent::Kind::kStateChange;
    event.state = state;
    if (!Append(job, event)) Store(job, /*synced=*/true);  // a state change is kept at once
  }

  void Fail(Job& job, JobState state, const Status& status) {
    job.record.error_code = status.code();
    job.record.error_message = status.message();
    SetState(job, state);
  }

  void Finish(Job& job, Result<std::string> result) {
    std::lock_guard lock(mu);
    if (result.ok()) {
      job.record.result = std::move(result).value();
      SetState(job, JobState::kSucceeded);
    } else if (shutting_down) {
      Fail(job, JobState::kInterrupted, Status::Unavailable(kStoppedReason));
    } else if (job.cancel) {
      // Whatever error a cancelled job stopped with, it stopped because it was asked to.
      Fail(job, JobState::kCancelled, Status::Cancelled(result.status().message()));
    } else {
      Fail(job, JobState::kFailed, result.status());
    }
  }

  class Control;
  void Run(const std::shared_ptr<Job>& job, const JobFn& fn, const JobAdmitFn& admit);
  Status Recover();
};

class JobEngine::Impl::Control final : public JobControl {
 public:
  Control(JobEngine::Impl& engine, JobEngine::Impl::Job& job) : engine_(engine), job_(job) {}

  const std::atomic<bool>& cancel_flag() const override { return job_.cancel; }

  void SetProgress(const JobProgress& progress) override {
    std::lock_guard lock(engine_.mu);
    int64_t now = NowMs();
    bool changed = !(progress == job_.record.progress);
    job_.record.progress = progress;
    job_.record.progress.update_ms = now;
    int64_t since = now - job_.last_progress_event_ms;
    if ((changed && since >= kProgressEventMs) || since >= kProgressHeartbeatMs) {
      job_.last_progress_event_ms = now;
      JobEvent event;
      event.kind = JobEvent::Kind::kProgress;
      event.progress = job_.record.progress;
      engine_.Append(job_, event);
    }
    if (now - job_.last_store_ms >= kProgressStoreMs) engine_.Store(job_, /*synced=*/false);
  }

  void Warn(const std::string& message) override {
    std::string id;
    {
      std::lock_guard lock(engine_.mu);
      job_.record.warnings.push_back(message);
      engine_.AddNote(job_, "warning", message);
      JobEvent event;
      event.kind = JobEvent::Kind::kWarning;
      event.message = message;
      engine_.Append(job_, event);
      engine_.Store(job_, /*synced=*/false);
      id = job_.record.id;
    }
    if (engine_.options.on_warning) engine_.options.on_warning(id, message);
  }

  void SetPhase(const std::string& phase) override {
    std::lock_guard lock(engine_.mu);
    job_.record.phase = phase;
    engine_.Store(job_, /*synced=*/false);
  }

  void Note(const std::string& what, const std::string& detail) override {
    std::lock_guard lock(engine_.mu);
    engine_.AddNote(job_, what, detail);
    engine_.Store(job_, /*synced=*/true);
  }

 private:
  JobEngine::Impl& engine_;
  JobEngine::Impl::Job& job_;
};

void JobEngine::Impl::Run(const std::shared_ptr<Job>& job, const JobFn& fn,
                          const JobAdmitFn& admit) {
  Control control(*this, *job);
  Status admitted = admit ? admit(control) : Status::OK();
  {
    std::lock_guard lock(mu);
    job->record.phase.clear();
    if (shutting_down) {
      Fail(*job, JobState::kInterrupted, Status::Unavailable(kStoppedReason));
      return;
    }
    if (job->cancel) {
      Fail(*job, JobState::kCancelled, Status::Cancelled("cancelled before it started"));
      return;
    }
    if (!admitted.ok()) {
      Fail(*job, JobState::kFailed, admitted);
      return;
    }
    SetState(*job, JobState::kRunning);
  }
  Finish(*job, fn(control));
}

Status JobEngine::Impl::Recover() {
  OFFHOST_ASSIGN_OR_RETURN(std::vector<JobRecord> records, store->LoadAll());
  int64_t expired_before =
      NowMs() - std::chrono::duration_cast<std::chrono::milliseconds>(options.retention).count();
  std::lock_guard lock(mu);
  for (JobRecord& record : records) {
    if (IsTerminal(record.state) && record.end_ms < expired_before) {
      OFFHOST_RETURN_IF_ERROR(store->Delete(record.id));
      continue;
    }
    auto job = std::make_shared<Job>();
    job->record = std::move(record);
    if (!IsTerminal(job->record.state)) {
      // The run that crashed may have sent events it never stored.
      job->record.last_sequence =
          std::max(job->record.last_sequence, job->record.reserved_sequence);
      job->record.leftovers_pending = true;
      Fail(*job, JobState::kInterrupted, Status::Unavailable(kStoppedReason));
    }
    jobs[job->record.id] = job;
  }
  return Status::OK();
}

JobEngine::JobEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<JobEngine>> JobEngine::Open(const JobEngineOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  OFFHOST_ASSIGN_OR_RETURN(impl->store, JobStore::Open(options.state_dir));
  OFFHOST_RETURN_IF_ERROR(impl->Recover());
  return std::unique_ptr<JobEngine>(new JobEngine(std::move(impl)));
}

JobEngine::~JobEngine() { Shutdown(); }

void JobEngine::Shutdown() {
  std::vector<std::shared_ptr<Impl::Job>> all;
  {
    std::lock_guard lock(impl_->mu);
    impl_->shutting_down = true;
    for (auto& [id, job] : impl_->jobs) {
      job->cancel = true;
      all.push_back(job);
    }
    impl_->changed.notify_all();
  }
  for (auto& job : all) {
    if (job->thread.joinable()) job->thread.join();
  }
}

Result<JobRecord> JobEngine::Start(JobRecord record, JobFn fn, JobAdmitFn admit) {
  std::lock_guard lock(impl_->mu);
  if (impl_->shutting_down) return Status::Unavailable("offhostd is stopping");
  for (auto& [id, job] : impl_->jobs) {
    // Threads of ended jobs are joined here, so they do not pile up until shutdown.
    if (IsTerminal(job->record.state) && job->thread.joinable()) job->thread.join();
    const JobRecord& old = job->record;
    if (record.request_id.empty() || old.request_id != record.request_id ||
        old.creator != record.creator) {
      continue;
    }
    if (old.type == record.type && old.spec == record.spec) return WithoutEvents(old);
    return Status::AlreadyExists("request_id " + record.request_id + " was used for job " + old.id +
                                 " with a different request; make a new request_id");
  }
  auto job = std::make_shared<Impl::Job>();
  job->record = std::move(record);
  job->record.id = NewJobId();
  job->record.create_ms = NowMs();
  job->record.events.clear();
  job->record.last_sequence = 0;
  job->record.reserved_sequence = 0;
  job->record.timeline.clear();
  impl_->SetState(*job, JobState::kQueued);
  impl_->jobs[job->record.id] = job;
  JobRecord out = WithoutEvents(job->record);
  job->thread = std::thread([impl = impl_.get(), job, fn = std::move(fn),
                             admit = std::move(admit)] { impl->Run(job, fn, admit); });
  return out;
}

Result<JobRecord> JobEngine::Cancel(const std::string& id, const std::string& canceller) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->jobs.find(id);
  if (it == impl_->jobs.end()) return Status::NotFound("job " + id + " not found");
  Impl::Job& job = *it->second;
  if (!IsTerminal(job.record.state) && !job.cancel) {
    job.cancel = true;
    job.record.canceller = canceller;
    // A queued job ends as soon as its thread looks at the flag; a running one stops soon.
    impl_->SetState(job, JobState::kCancelling);
  }
  return WithoutEvents(job.record);
}

Result<JobRecord> JobEngine::Get(const std::string& id) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->jobs.find(id);
  if (it == impl_->jobs.end()) return Status::NotFound("job " + id + " not found");
  return WithoutEvents(it->second->record);
}

std::vector<JobRecord> JobEngine::List(const JobFilter& filter) const {
  std::vector<JobRecord> out;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [id, job] : impl_->jobs) {
      if (Matches(job->record, filter)) out.push_back(WithoutEvents(job->record));
    }
  }
  // Ids start with the creation time in milliseconds; ties are broken by the id.
  std::sort(out.begin(), out.end(), [](const JobRecord& a, const JobRecord& b) {
    return a.create_ms != b.create_ms ? a.create_ms > b.create_ms : a.id > b.id;
  });
  return out;
}

std::vector<JobRecord> JobEngine::PendingLeftovers() const {
  std::vector<JobRecord> out;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [id, job] : impl_->jobs) {
      if (job->record.leftovers_pending) out.push_back(WithoutEvents(job->record));
    }
  }
  std::sort(out.begin(), out.end(), [](const JobRecord& a, const JobRecord& b) {
    return a.create_ms != b.create_ms ? a.create_ms < b.create_ms : a.id < b.id;
  });
  return out;
}

Status JobEngine::SettleLeftovers(const std::string& id, bool released, const std::string& note) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->jobs.find(id);
  if (it == impl_->jobs.end()) return Status::NotFound("job " + id + " not found");
  JobRecord& record = it->second->record;
  if (!note.empty()) record.warnings.push_back(note);
  if (released) record.leftovers_pending = false;
  return impl_->store->Put(record, /*synced=*/true);
}

Status JobEngine::Watch(const std::string& id, uint64_t after_sequence,
                        const std::function<bool(const JobEvent&, const JobRecord&)>& on_event,
                        const std::function<bool()>& stop) const {
  std::unique_lock lock(impl_->mu);
  auto it = impl_->jobs.find(id);
  if (it == impl_->jobs.end()) return Status::NotFound("job " + id + " not found");
  std::shared_ptr<Impl::Job> job = it->second;
  uint64_t sent = after_sequence;
  for (;;) {
    std::vector<JobEvent> pending;
    for (const JobEvent& e : job->record.events) {
      if (e.sequence > sent) pending.push_back(e);
    }
    JobRecord now = WithoutEvents(job->record);
    // The terminal event is the last one a job gets: once it is out, the watch is over.
    bool over = IsTerminal(now.state);
    lock.unlock();
    for (const JobEvent& e : pending) {
      if (!on_event(e, now)) return Status::Cancelled("the watcher stopped");
      sent = e.sequence;
    }
    if (over) return Status::OK();
    if (stop && stop()) return Status::Cancelled("the watcher went away");
    lock.lock();
    if (impl_->shutting_down) return Status::Unavailable("offhostd is stopping");
    impl_->changed.wait_for(lock, std::chrono::seconds(1), [&] {
      return job->record.last_sequence > sent || impl_->shutting_down;
    });
  }
}

}  // namespace offhost::proxy
