// offhostd's backup scheduler (docs/scheduler.md): the backup slots and bandwidth limits
// every backup job obeys, and the loop that starts the configured VMs' scheduled backups
// when their calendar events fire. The pure parts (calendar events, stagger, backoff) are in
// proxy/schedule.h and proxy/slots.h.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "offhost/grpc/service_context.h"
#include "offhost/proxy/job_engine.h"
#include "offhost/proxy/slots.h"

namespace offhost::grpcapi {

class BackupScheduler {
 public:
  using Clock = std::function<int64_t()>;  // unix seconds

  // `context` (hosts, VMs, datastores, jobs) must outlive the scheduler. Nothing runs until
  // Start().
  BackupScheduler(ServiceContext& context, proxy::SlotLimits limits, Clock clock = nullptr);
  ~BackupScheduler();  // Stop()

  // Where a scheduled backup that could not even start is reported (the daemon logs it).
  void set_on_error(std::function<void(const std::string&)> f) { on_error_ = std::move(f); }

  // Computes every VM's next run from now (runs missed while offhostd was down are not made
  // up) and starts the loop that fires them.
  void Start();
  void Stop();

  proxy::SlotLimiter& slots() { return slots_; }
  // The shared limit of a host's backups; null when it has none.
  std::shared_ptr<proxy::RateLimiter> HostRate(const std::string& host) const;
  int64_t Now() const { return clock_(); }

  struct Entry {
    const VmConfig* vm = nullptr;
    const HostConfig* host = nullptr;
    int64_t next_run = 0;  // 0: not scheduled
    int full_offset = 0;   // the VM's day in its full_every period (staggered per host)
  };
  std::vector<Entry> List() const;
  // Whether a scheduled run of `vm` at `t` is its periodic full.
  bool IsFull(const VmConfig& vm, int64_t t) const;

  // Starts the scheduled backup of `vm` now, as if its schedule fired: the job, or the
  // backup of the VM already queued or running.
  Result<proxy::JobRecord> RunNow(const VmConfig& vm);

 private:
  void Loop();
  int FullOffset(const VmConfig& vm) const;

  ServiceContext& context_;
  proxy::SlotLimiter slots_;
  Clock clock_;
  std::map<std::string, std::shared_ptr<proxy::RateLimiter>> host_rates_;
  std::map<std::string, int> full_offsets_;  // vm name -> its staggered day
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::map<std::string, int64_t> next_run_;  // vm name -> unix seconds
  bool stop_ = false;
  std::function<void(const std::string&)> on_error_;
  std::thread thread_;
};

}  // namespace offhost::grpcapi
