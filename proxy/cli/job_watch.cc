#include "job_watch.h"

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli_util.h"
#include "offhost/v1/jobs.grpc.pb.h"

namespace offhost::cli {
namespace {

std::atomic<bool> g_interrupted{false};

bool Terminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED || s == v1::JOB_STATE_INTERRUPTED;
}

// A dropped stream (daemon restart, proxy in between, network) is worth re-attaching to;
// anything else (no such job, refused credentials) is an answer. A stopping offhostd cancels
// the calls it still has (CANCELLED); this watch never cancels its own call before it ends.
bool Retryable(const grpc::Status& st) {
  return st.ok() || st.error_code() == grpc::StatusCode::UNAVAILABLE ||
         st.error_code() == grpc::StatusCode::CANCELLED ||
         st.error_code() == grpc::StatusCode::INTERNAL ||
         st.error_code() == grpc::StatusCode::UNKNOWN ||
         st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// While it lives, Ctrl-C and SIGTERM make it ask the daemon, once, to cancel the job; the
// watch goes on and shows the job ending CANCELLED.
class CancelOnSignal {
 public:
  CancelOnSignal(const DaemonClient& client, std::string job)
      : thread_([&client, job = std::move(job)](std::stop_token stop) {
          // A signal handler can only set a flag, so the flag is looked at every 100 ms; the
          // end of the watch wakes the wait at once (the CLI's exit does not wait for it).
          std::mutex mu;
          std::condition_variable_any wake;
          std::unique_lock<std::mutex> lock(mu);
          while (!g_interrupted.load() && !stop.stop_requested()) {
            wake.wait_for(lock, stop, std::chrono::milliseconds(100), [] { return false; });
          }
          if (stop.stop_requested()) return;
          std::cerr << "\roffhost: cancelling " << job << "\n";
          auto stub = v1::JobsService::NewStub(client.channel());
          v1::CancelJobRequest req;
          req.set_name(job);
          v1::Job answer;
          auto ctx = client.Context();
          grpc::Status st = stub->CancelJob(ctx.get(), req, &answer);
          if (!st.ok()) std::cerr << "offhost: cancel failed: " << st.error_message() << "\n";
        }) {
    std::signal(SIGINT, [](int) { g_interrupted = true; });
    std::signal(SIGTERM, [](int) { g_interrupted = true; });
  }

 private:
  std::jthread thread_;
};

}  // namespace

std::string JobStateName(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  if (name.starts_with("JOB_STATE_")) name = name.substr(10);
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name.empty() ? "unknown" : name;
}

Result<v1::Job> WatchToEnd(const DaemonClient& client, const std::string& job,
                           const std::string& label, int* exit) {
  auto stub = v1::JobsService::NewStub(client.channel());
  std::atomic<uint64_t> done{0}, total{0};
  CancelOnSignal cancel(client, job);
  ProgressBar bar(label, [&] { return std::make_pair(done.load(), total.load()); });
  uint64_t after = 0;
  for (int attempts = 0; attempts < 20;) {
    v1::WatchJobRequest req;
    req.set_name(job);
    req.set_after_sequence(after);
    auto ctx = client.Context();
    auto reader = stub->WatchJob(ctx.get(), req);
    v1::JobEvent event;
    while (reader->Read(&event)) {
      attempts = 0;
      after = event.sequence();
      if (event.has_progress()) {
        total = event.progress().total_bytes();
        done = event.progress().done_bytes();
      }
      if (event.has_state_change() && Terminal(event.state_change().state())) {
        ctx->TryCancel();
        reader->Finish();
        return event.state_change().job();
      }
    }
    grpc::Status st = reader->Finish();
    if (!Retryable(st)) {
      *exit = ReportRpcError(st, *ctx, client);
      return Status::Unavailable("reported");
    }
    ++attempts;
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempts));
  }
  std::cerr << "offhost: error: lost the watch of " << job << "; it may still run: see "
            << "'offhost jobs'\n";
  *exit = kExitUnavailable;
  return Status::Unavailable("reported");
}

int ReportJobFailure(const v1::Job& job) {
  const auto& e = job.error();
  std::cerr << "offhost: error: " << job.name() << " " << JobStateName(job.state()) << ": "
            << (e.message().empty() ? "no reason given" : e.message())
            << (e.info().reason().empty() ? "" : " (" + e.info().reason() + ")") << "\n";
  return kExitFailed;
}

}  // namespace offhost::cli
