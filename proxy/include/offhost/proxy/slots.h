// What keeps backups off the hosts' backs (docs/scheduler.md): slots (at most N backups at
// once per hypervisor host, per datastore and in total) and bandwidth limits on the bytes a
// backup reads from its source. Both are shared by every backup job of the daemon.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "offhost/common/status.h"

namespace offhost::proxy {

struct SlotLimits {
  int total = 0;                        // backups at once on this proxy; 0: no limit
  int per_datastore = 0;                // into one datastore; 0: no limit
  int per_host_default = 2;             // from one hypervisor host, unless per_host says
  std::map<std::string, int> per_host;  // host -> its limit (0: no limit)
};

class SlotLimiter {
 public:
  explicit SlotLimiter(SlotLimits limits) : limits_(std::move(limits)) {}

  // Held while a backup runs; the destructor gives the slot back.
  class Slot {
   public:
    ~Slot();
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    friend class SlotLimiter;
    Slot(SlotLimiter& owner, std::string host, std::string datastore)
        : owner_(owner), host_(std::move(host)), datastore_(std::move(datastore)) {}
    SlotLimiter& owner_;
    std::string host_, datastore_;
  };

  // A slot for a backup of a VM of `host` into `datastore`, at once when one is free, else
  // after `on_wait(why)` ("host kvm1 runs 2 of 2 backups") once, when one frees. Waiters get
  // slots in the order they asked, among those whose limits allow it. Cancelled when
  // `*cancel` becomes true while waiting.
  Result<std::unique_ptr<Slot>> Acquire(const std::string& host, const std::string& datastore,
                                        const std::atomic<bool>* cancel,
                                        const std::function<void(const std::string&)>& on_wait);

  // Running backups now (for listings and tests).
  int running_on_host(const std::string& host) const;

 private:
  // With mu_ held: "" when a slot is free for (host, datastore), else why not.
  std::string Busy(const std::string& host, const std::string& datastore) const;
  void Release(const std::string& host, const std::string& datastore);

  SlotLimits limits_;
  mutable std::mutex mu_;
  std::condition_variable freed_;
  int total_ = 0;
  std::map<std::string, int> hosts_, datastores_;
  uint64_t next_ticket_ = 0;
  // Waiting tickets -> (host, datastore), oldest first.
  std::map<uint64_t, std::pair<std::string, std::string>> waiting_;
};

// A bandwidth limit in bytes per second, shared by the backups that use it: Take(n) returns
// when reading n more bytes keeps the average at the rate (bursts of up to one second).
class RateLimiter {
 public:
  explicit RateLimiter(uint64_t bytes_per_second) : rate_(bytes_per_second) {}
  // Cancelled when `*cancel` becomes true while waiting.
  Status Take(uint64_t bytes, const std::atomic<bool>* cancel);
  uint64_t rate() const { return rate_; }

 private:
  const uint64_t rate_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point free_at_{};
};

// "10M" (bytes per second, binary units K, M, G), "500K", "0" (no limit).
Result<uint64_t> ParseBandwidth(const std::string& text);

}  // namespace offhost::proxy
