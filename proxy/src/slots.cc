// Slots and bandwidth limits (slots.h, docs/scheduler.md).
#include "offhost/proxy/slots.h"

#include <charconv>
#include <thread>

namespace offhost::proxy {
namespace {

constexpr auto kCancelPoll = std::chrono::milliseconds(100);

std::string Runs(const std::string& what, int running, int limit) {
  return what + " runs " + std::to_string(running) + " of " + std::to_string(limit) +
         " backups at once";
}

}  // namespace

SlotLimiter::Slot::~Slot() { owner_.Release(host_, datastore_); }

std::string SlotLimiter::Busy(const std::string& host, const std::string& datastore) const {
  auto count = [](const std::map<std::string, int>& m, const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? 0 : it->second;
  };
  auto limit = limits_.per_host.find(host);
  int host_limit = limit == limits_.per_host.end() ? limits_.per_host_default : limit->second;
  if (host_limit > 0 && count(hosts_, host) >= host_limit) {
    return Runs("host " + host, count(hosts_, host), host_limit);
  }
  if (limits_.per_datastore > 0 && count(datastores_, datastore) >= limits_.per_datastore) {
    return Runs("datastore " + datastore, count(datastores_, datastore), limits_.per_datastore);
  }
  if (limits_.total > 0 && total_ >= limits_.total) return Runs("offhostd", total_, limits_.total);
  return "";
}

Result<std::unique_ptr<SlotLimiter::Slot>> SlotLimiter::Acquire(
    const std::string& host, const std::string& datastore, const std::atomic<bool>* cancel,
    const std::function<void(const std::string&)>& on_wait) {
  std::unique_lock lock(mu_);
  uint64_t ticket = next_ticket_++;
  waiting_[ticket] = {host, datastore};
  bool told = false;
  for (;;) {
    // The oldest waiter whose limits allow it goes first, so a busy host does not hold up
    // the VMs of another one, and nobody overtakes an older waiter of the same host.
    uint64_t first = UINT64_MAX;
    for (const auto& [t, key] : waiting_) {
      if (Busy(key.first, key.second).empty()) {
        first = t;
        break;
      }
    }
    if (first == ticket) break;
    if (cancel != nullptr && cancel->load()) {
      waiting_.erase(ticket);
      freed_.notify_all();
      return Status::Cancelled("cancelled while waiting for a backup slot");
    }
    if (!told && on_wait) {
      told = true;
      std::string why = Busy(host, datastore);
      if (why.empty()) why = "older backups wait for the same slots";
      lock.unlock();
      on_wait(why);
      lock.lock();
      continue;
    }
    freed_.wait_for(lock, kCancelPoll);
  }
  waiting_.erase(ticket);
  ++total_;
  ++hosts_[host];
  ++datastores_[datastore];
  freed_.notify_all();  // the next waiter may fit too
  return std::unique_ptr<Slot>(new Slot(*this, host, datastore));
}

void SlotLimiter::Release(const std::string& host, const std::string& datastore) {
  std::lock_guard lock(mu_);
  --total_;
  --hosts_[host];
  --datastores_[datastore];
  freed_.notify_all();
}

int SlotLimiter::running_on_host(const std::string& host) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(host);
  return it == hosts_.end() ? 0 : it->second;
}

Status RateLimiter::Take(uint64_t bytes, const std::atomic<bool>* cancel) {
  if (rate_ == 0 || bytes == 0) return Status::OK();
  auto now = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point start;
  {
    std::lock_guard lock(mu_);
    // Unused time is credited for at most one second: a burst after idling stays short.
    free_at_ = std::max(free_at_, now - std::chrono::seconds(1));
    start = free_at_;
    free_at_ += std::chrono::nanoseconds(static_cast<int64_t>(
        static_cast<long double>(bytes) * 1e9L / static_cast<long double>(rate_)));
  }
  while (std::chrono::steady_clock::now() < start) {
    if (cancel != nullptr && cancel->load()) return Status::Cancelled("cancelled");
    std::this_thread::sleep_until(std::min(start, std::chrono::steady_clock::now() + kCancelPoll));
  }
  return Status::OK();
}

Result<uint64_t> ParseBandwidth(const std::string& text) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  std::string unit(end, text.data() + text.size());
  uint64_t mult = unit.empty() || unit == "B" ? 1
                  : unit == "K"               ? 1ULL << 10
                  : unit == "M"               ? 1ULL << 20
                  : unit == "G"               ? 1ULL << 30
                                              : 0;
  if (ec != std::errc() || end == text.data() || mult == 0 || n > (1ULL << 40)) {
    return Status::InvalidArgument("\"" + text +
                                   "\" is not a bandwidth; write bytes per second as \"50M\", "
                                   "\"500K\", \"1G\" (binary units), or \"0\" for no limit");
  }
  return n * mult;
}

}  // namespace offhost::proxy
