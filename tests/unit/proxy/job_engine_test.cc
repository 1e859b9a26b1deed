// JobEngine: jobs run, report, cancel, replay their events, and survive a restart.
#include "offhost/proxy/job_engine.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "test_util.h"

namespace offhost::proxy {
namespace {

using offhost::testing::TempDir;

JobRecord NewJob(const std::string& request_id = "") {
  JobRecord job;
  job.type = "test";
  job.spec = std::string("spec\0with\xffnul", 13);
  job.creator = "alice";
  job.request_id = request_id;
  job.labels = {{"vendor.job", "4711"}};
  return job;
}

// Waits for the job to end (Watch returns once its terminal event was sent).
JobRecord AwaitEnd(JobEngine& engine, const std::string& id) {
  EXPECT_TRUE(engine.Watch(id, 0, [](const JobEvent&, const JobRecord&) { return true; }, {}).ok());
  return *engine.Get(id);
}

std::unique_ptr<JobEngine> OpenEngine(const TempDir& dir) {
  auto engine = JobEngine::Open({.state_dir = dir.path() + "/state"});
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return std::move(engine).value();
}

JobFn Returning(std::string result) {
  return [result](JobControl&) -> Result<std::string> { return result; };
}

// Runs until cancelled (a long job stand-in).
Result<std::string> UntilCancelled(JobControl& control) {
  while (!control.cancel_flag()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return Status::Cancelled("stopped");
}

TEST(JobEngineTest, RunsAndKeepsTheResult) {
  TempDir dir;
  auto engine = OpenEngine(dir);
  auto job = engine->Start(NewJob(), [](JobControl& control) -> Result<std::string> {
    control.SetProgress({.total_bytes = 10, .done_bytes = 10});
    return std::string("result\0blob", 11);
  });
  ASSERT_TRUE(job.ok());
  JobRecord done = AwaitEnd(*engine, job->id);
  EXPECT_EQ(done.state, JobState::kSucceeded);
  EXPECT_EQ(done.result, std::string("result\0blob", 11));
  EXPECT_EQ(done.progress.done_bytes, 10u);
  EXPECT_GT(done.end_ms, 0);
}

TEST(JobEngineTest, FailureKeepsTheError) {
  TempDir dir;
  auto engine = OpenEngine(dir);
  auto job = engine->Start(NewJob(), [](JobControl&) -> Result<std::string> {
    return Status::NotFound("no such disk");
  });
  JobRecord done = AwaitEnd(*engine, job->id);
  EXPECT_EQ(done.state, JobState::kFailed);
  EXPECT_EQ(done.error_code, StatusCode::kNotFound);
  EXPECT_EQ(done.error_message, "no such disk");
}

TEST(JobEngineTest, CancelStopsARunningJob) {
  TempDir dir;
  auto engine = OpenEngine(dir);
  auto job = engine->Start(NewJob(), UntilCancelled);
  auto cancelling = engine->Cancel(job->id, "bob");
  ASSERT_TRUE(cancelling.ok());
  JobRecord done = AwaitEnd(*engine, job->id);
  EXPECT_EQ(done.state, JobState::kCancelled);
  EXPECT_EQ(done.error_code, StatusCode::kCancelled);
  EXPECT_EQ(done.canceller, "bob");
  // Cancelling an ended job changes nothing.
  EXPECT_EQ(engine->Cancel(job->id, "carol")->canceller, "bob");
  EXPECT_EQ(engine->Cancel("nope", "bob").status().code(), StatusCode::kNotFound);
}

TEST(JobEngineTest, WatchReplaysFromASequenceWithoutGaps) {
  TempDir dir;
  auto engine = OpenEngine(dir);
  auto job = engine->Start(NewJob(), Returning("ok"));
  std::vector<JobEvent> all;
  ASSERT_TRUE(engine
                  ->Watch(job->id, 0,
                          [&](const JobEvent& e, const JobRecord&) {
                            all.push_back(e);
                            return true;
                          },
                          {})
                  .ok());
  ASSERT_EQ(all.size(), 3u);  // queued, running, succeeded
  EXPECT_EQ(all.back().state, JobState::kSucceeded);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].sequence, i + 1);
  std::vector<uint64_t> after_first;
  ASSERT_TRUE(engine
                  ->Watch(job->id, 1,
                          [&](const JobEvent& e, const JobRecord&) {
                            after_first.push_back(e.sequence);
                            return true;
                          },
                          {})
                  .ok());
  EXPECT_EQ(after_first, (std::vector<uint64_t>{2, 3}));
}

TEST(JobEngineTest, WatchFollowsLiveEventsAndStopsWhenAsked) {
  TempDir dir;
  auto engine = OpenEngine(dir);
  auto job = engine->Start(NewJob(), UntilCancelled);
  std::atomic<bool> gone{false};
  std::thread client([&] {
    Status st = engine->Watch(
        job->id, 0, [](const JobEvent&, const JobRecord&) { return true; },
        [&] { return gone.load(); });
    EXPECT_EQ(st.code(), StatusCode::kCancelled);
  });
  gone = true;
  client.join();
  std::vector<JobState> states;
  std::thread follower([&] {
    EXPECT_TRUE(engine
                    ->Watch(job->id, 0,
                            [&](const JobEvent& e, const JobRecord&) {
                              if (e.kind == JobEvent::Kind::kStateChange) states.push_back(e.state);
                              return true;
                            },
                            {})
                    .ok());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(engine->Cancel(job->id, "bob").ok());
  follower.join();
  EXPECT_EQ(states.back(), JobState::kCancelled);
}

TEST(JobEngineTest, RequestIdReturnsTheSameJob) {
  TempDir dir;
  auto engine = OpenEngine(dir);
  auto first = engine->Start(NewJob("r1"), Returning(""));
  auto again = engine->Start(NewJob("r1"), Returning(""));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->id, first->id);
  JobRecord other = NewJob("r1");
  other.spec = "different";
  EXPECT_EQ(engine->Start(other, UntilCancelled).status().code(), StatusCode::kAlreadyExists);
}

TEST(JobEngineTest, ListFiltersNewestFirst) {
  TempDir dir;
  auto engine = OpenEngine(dir);
  JobRecord a = NewJob();
  a.keys = {{"vm", "web01"}};
  auto first = engine->Start(a, Returning(""));
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto second = engine->Start(NewJob(), Returning(""));
  AwaitEnd(*engine, first->id);
  AwaitEnd(*engine, second->id);
  auto all = engine->List({});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, second->id);
  auto web01 = engine->List({.keys = {{"vm", "web01"}}});
  ASSERT_EQ(web01.size(), 1u);
  EXPECT_EQ(web01[0].id, first->id);
  EXPECT_TRUE(engine->List({.states = {JobState::kFailed}}).empty());
}

TEST(JobEngineTest, ShutdownInterruptsAndRestartKeepsJobs) {
  TempDir dir;
  std::string done_id, running_id;
  {
    auto engine = OpenEngine(dir);
    done_id = engine->Start(NewJob(), Returning("r"))->id;
    AwaitEnd(*engine, done_id);
    running_id = engine->Start(NewJob(), UntilCancelled)->id;
  }
  auto engine = OpenEngine(dir);
  EXPECT_EQ(engine->Get(done_id)->state, JobState::kSucceeded);
  EXPECT_EQ(engine->Get(done_id)->result, "r");
  JobRecord interrupted = *engine->Get(running_id);
  EXPECT_EQ(interrupted.state, JobState::kInterrupted);
  EXPECT_EQ(interrupted.error_message, "offhostd stopped while it ran");
  EXPECT_EQ(interrupted.spec, NewJob().spec);
}

// A daemon killed with -9: a child process starts a job and exits while it runs, without
// any shutdown. The next Open marks the job INTERRUPTED with its leftovers pending until they
// are settled; a job stopped by a clean shutdown has none.
TEST(JobEngineTest, CrashLeavesLeftoversPendingUntilSettled) {
  TempDir dir;
  std::string clean_id;
  {
    auto engine = OpenEngine(dir);
    clean_id = engine->Start(NewJob(), UntilCancelled)->id;
  }
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto engine = JobEngine::Open({.state_dir = dir.path() + "/state"});
    if (!engine.ok()) _exit(2);
    auto job = (*engine)->Start(NewJob("crashed"), UntilCancelled);
    _exit(job.ok() ? 0 : 3);  // no destructor, no shutdown: as if killed
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  std::string crashed_id;
  {
    auto engine = OpenEngine(dir);
    EXPECT_FALSE(engine->Get(clean_id)->leftovers_pending);
    std::vector<JobRecord> pending = engine->PendingLeftovers();
    ASSERT_EQ(pending.size(), 1u);
    crashed_id = pending[0].id;
    EXPECT_EQ(pending[0].request_id, "crashed");
    EXPECT_EQ(pending[0].state, JobState::kInterrupted);
    // Not released (a host that did not answer): still pending, with the reason.
    ASSERT_TRUE(engine->SettleLeftovers(crashed_id, false, "host down").ok());
    EXPECT_EQ(engine->PendingLeftovers().size(), 1u);
  }
  {
    auto engine = OpenEngine(dir);
    ASSERT_EQ(engine->PendingLeftovers().size(), 1u);
    ASSERT_TRUE(engine->SettleLeftovers(crashed_id, true, "released: export x").ok());
    EXPECT_TRUE(engine->PendingLeftovers().empty());
  }
  auto engine = OpenEngine(dir);  // settled stays settled
  EXPECT_TRUE(engine->PendingLeftovers().empty());
  JobRecord job = *engine->Get(crashed_id);
  EXPECT_EQ(job.state, JobState::kInterrupted);
  EXPECT_EQ(job.warnings, (std::vector<std::string>{"host down", "released: export x"}));
}

// A client that saw events of a job whose daemon was then killed re-attaches after the last
// sequence it saw: the INTERRUPTED state change must come after it, although the killed run
// never stored those events (progress events are stored only every few seconds).
TEST(JobEngineTest, CrashedJobEndsAfterEverySequenceAClientSaw) {
  TempDir dir;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto engine = JobEngine::Open({.state_dir = dir.path() + "/state"});
    if (!engine.ok()) _exit(200);
    auto job = (*engine)->Start(NewJob("crashed"), [](JobControl& control) -> Result<std::string> {
      control.SetProgress({.total_bytes = 10, .done_bytes = 1});
      return UntilCancelled(control);
    });
    if (!job.ok()) _exit(201);
    uint64_t seen = 0;
    (void)(*engine)->Watch(
        job->id, 0,
        [&](const JobEvent& e, const JobRecord&) {
          seen = e.sequence;
          return e.kind != JobEvent::Kind::kProgress;  // a client that saw progress, then lost it
        },
        {});
    _exit(static_cast<int>(seen));  // no destructor, no shutdown: as if killed
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) > 0 && WEXITSTATUS(status) < 200) << status;
  uint64_t seen = WEXITSTATUS(status);

  auto engine = OpenEngine(dir);
  std::vector<JobRecord> pending = engine->PendingLeftovers();
  ASSERT_EQ(pending.size(), 1u);
  std::vector<JobEvent> after;
  ASSERT_TRUE(engine
                  ->Watch(pending[0].id, seen,
                          [&](const JobEvent& e, const JobRecord&) {
                            after.push_back(e);
                            return true;
                          },
                          {})
                  .ok());
  ASSERT_EQ(after.size(), 1u) << "re-attached after " << seen << ", got no event";
  EXPECT_GT(after[0].sequence, seen);
  EXPECT_EQ(after[0].kind, JobEvent::Kind::kStateChange);
  EXPECT_EQ(after[0].state, JobState::kInterrupted);
}

}  // namespace
}  // namespace offhost::proxy

namespace offhost::proxy {
namespace {

using offhost::testing::TempDir;

// A job admitted only when its gate opens stays QUEUED with its phase until then; its notes,
// warnings and state changes make its timeline, stored and sent as events.
TEST(JobEngineTest, AdmittedJobsWaitQueuedAndKeepATimeline) {
  TempDir dir;
  std::vector<std::string> logged;
  JobEngineOptions options{.state_dir = dir.path() + "/state"};
  options.on_warning = [&](const std::string&, const std::string& m) { logged.push_back(m); };
  auto engine = JobEngine::Open(options);
  ASSERT_TRUE(engine.ok());
  std::atomic<bool> open{false};
  auto job = (*engine)->Start(
      NewJob(),
      [](JobControl& control) -> Result<std::string> {
        control.Warn("past its window");
        return std::string("ok");
      },
      [&](JobControl& control) {
        control.SetPhase("waiting_for_slot");
        control.Note("waiting", "host kvm1 runs 2 of 2 backups at once");
        while (!open) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        control.Note("slot", "host kvm1");
        return Status::OK();
      });
  ASSERT_TRUE(job.ok());
  for (int i = 0; i < 200 && (*engine)->Get(job->id)->timeline.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  JobRecord waiting = *(*engine)->Get(job->id);
  EXPECT_EQ(waiting.state, JobState::kQueued);
  EXPECT_EQ(waiting.phase, "waiting_for_slot");
  open = true;
  std::vector<JobEvent> events;
  ASSERT_TRUE((*engine)
                  ->Watch(job->id, 0,
                          [&](const JobEvent& e, const JobRecord&) {
                            events.push_back(e);
                            return true;
                          },
                          {})
                  .ok());
  JobRecord done = *(*engine)->Get(job->id);
  std::vector<std::string> whats;
  for (const auto& e : done.timeline) whats.push_back(e.what);
  EXPECT_EQ(whats, (std::vector<std::string>{"queued", "waiting", "slot", "running", "warning",
                                             "succeeded"}));
  EXPECT_EQ(done.phase, "");
  EXPECT_EQ(logged, std::vector<std::string>{"past its window"});
  int warnings = 0, notes = 0;
  for (const auto& e : events) {
    warnings += e.kind == JobEvent::Kind::kWarning ? 1 : 0;
    notes += e.kind == JobEvent::Kind::kTimeline ? 1 : 0;
  }
  EXPECT_EQ(warnings, 1);
  EXPECT_EQ(notes, 3);  // waiting, slot, warning
  // The timeline is in the stored record: a restarted engine shows it.
  engine->reset();
  auto reopened = JobEngine::Open({.state_dir = dir.path() + "/state"});
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->Get(job->id)->timeline, done.timeline);
}

}  // namespace
}  // namespace offhost::proxy
