#include "offhost/grpc/leftovers.h"

#include <thread>

#include "backup_job.h"
#include "offhost/proxy/job_engine.h"
#include "offhost/proxy/vm_backup.h"
#include "offhost/storage/datastore.h"

namespace offhost::grpcapi {
namespace {

// Sleeps `delay`, waking early when `stop` is set; false when it was.
bool Pause(std::chrono::milliseconds delay, const std::atomic<bool>& stop) {
  auto until = std::chrono::steady_clock::now() + delay;
  while (!stop && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return !stop;
}

// Errors that may pass: the host did not answer, or a backup of the VM holds its lock.
bool WorthRetrying(const Status& st) {
  return st.code() == StatusCode::kUnavailable || st.code() == StatusCode::kFailedPrecondition ||
         st.code() == StatusCode::kIOError;
}

std::string Joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : "; ") + s;
  return out;
}

void ReleaseOne(const ServiceContext& context, const proxy::JobRecord& job,
                const std::atomic<bool>& stop, const LeftoverLog& log,
                const LeftoverOptions& options) {
  proxy::JobEngine& jobs = *context.jobs;
  auto settle = [&](bool released, const std::string& note, bool problem) {
    log(problem, "job " + job.id + ": " + note);
    Status st = jobs.SettleLeftovers(job.id, released, note);
    if (!st.ok()) log(true, "job " + job.id + ": " + st.message());
  };
  v1::BackupSpec spec;
  if (!spec.ParseFromString(job.spec)) {
    settle(true, "the interrupted backup's leftovers were not released: its spec is unreadable",
           true);
    return;
  }
  BackupPlan plan;
  grpc::ServerContext no_call;  // PlanBackup's error details go nowhere
  if (grpc::Status st = PlanBackup(context, &no_call, spec, &plan); !st.ok()) {
    // The VM or its host is no longer configured: nothing here can reach it.
    settle(true,
           "the interrupted backup's leftovers were not released: " + st.error_message() +
               "; the VM's next backup through offhost removes them",
           true);
    return;
  }
  std::string vm = "VM " + plan.vm_id + " (host " + plan.host + ")";
  Status last;
  for (int attempt = 1; attempt <= std::max(1, options.attempts); ++attempt) {
    if (attempt > 1 && !Pause(options.retry_delay, stop)) break;
    auto ds = storage::Datastore::Open(plan.datastore->path, /*for_writing=*/false);
    Result<std::vector<std::string>> released = ds.ok()
                                                    ? proxy::ReleaseVmLeftovers(**ds, plan.request)
                                                    : Result<std::vector<std::string>>(ds.status());
    if (released.ok()) {
      settle(true,
             released->empty()
                 ? "leftovers of the interrupted backup of " + vm + ": none were found"
                 : "released at offhostd's start, left by the interrupted backup "
                   "of " +
                       vm + ": " + Joined(*released),
             false);
      return;
    }
    last = released.status();
    log(true, "job " + job.id + ": releasing the leftovers of the interrupted backup of " + vm +
                  " (attempt " + std::to_string(attempt) + "): " + last.message());
    if (!WorthRetrying(last)) break;
  }
  if (stop) return;  // pending: the next start tries again
  settle(false,
         "the leftovers of the interrupted backup of " + vm +
             " could not be released: " + last.message() +
             "; offhostd tries again at its next start, and the VM's next backup removes them",
         true);
}

}  // namespace

void ReleaseInterruptedBackups(const ServiceContext& context, const std::atomic<bool>& stop,
                               const LeftoverLog& log, const LeftoverOptions& options) {
  if (context.jobs == nullptr) return;
  for (const proxy::JobRecord& job : context.jobs->PendingLeftovers()) {
    if (stop) return;
    if (job.type != "backup") {
      // Restores and verifies make nothing outside the daemon that outlives it.
      context.jobs->SettleLeftovers(job.id, true, "").IgnoreError();
      continue;
    }
    ReleaseOne(context, job, stop, log, options);
  }
}

}  // namespace offhost::grpcapi
