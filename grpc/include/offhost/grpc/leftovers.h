// offhostd's start after a crash: a backup that was running when the daemon died (kill -9,
// power loss) never released its point-in-time view, so the hypervisor may still hold what
// the snapshot driver made for it (QEMU fleecing nodes, block jobs, NBD exports and
// bitmaps; a libvirt backup job, scratch files and checkpoints; qemu-nbd processes). The job
// engine marks such jobs INTERRUPTED with leftovers_pending; this releases their leftovers
// and says so on each job (Job.warnings) and in the log.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "offhost/grpc/service_context.h"

namespace offhost::grpcapi {

struct LeftoverOptions {
  // A host that does not answer (or a backup of the VM that runs now) is tried this many
  // times, `retry_delay` apart; after that the job stays pending for the next start.
  int attempts = 3;
  std::chrono::milliseconds retry_delay{10000};
};

// `problem`: the line is a warning (something could not be released), else information.
using LeftoverLog = std::function<void(bool problem, const std::string& message)>;

// For each interrupted backup job with leftovers pending, oldest first: rebuilds its driver
// request from the job's BackupSpec and the configuration, then releases the VM's leftovers
// under the VM's backup lock (proxy::ReleaseVmLeftovers). Returns when every job was handled
// or once `stop` is set. Never fails: each outcome is logged and written on its job.
void ReleaseInterruptedBackups(const ServiceContext& context, const std::atomic<bool>& stop,
                               const LeftoverLog& log, const LeftoverOptions& options = {});

}  // namespace offhost::grpcapi
