// Following a job of offhostd to its end: the progress bar on a terminal, re-attaching after a
// dropped stream, and Ctrl-C / SIGTERM asking the daemon to cancel the job.
#pragma once

#include <string>

#include "daemon_client.h"
#include "offhost/v1/jobs.pb.h"

namespace offhost::cli {

// Watches `job` (a "jobs/..." name) until it ends and returns it in its final state, whatever
// that is. On an RPC failure the error is already reported and `*exit` set.
Result<v1::Job> WatchToEnd(const DaemonClient& client, const std::string& job,
                           const std::string& label, int* exit);

// Reports a job that ended without succeeding and returns its exit code.
int ReportJobFailure(const v1::Job& job);

std::string JobStateName(v1::JobState state);  // "succeeded", "running", ...

}  // namespace offhost::cli
