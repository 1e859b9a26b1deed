// Space accounting of a datastore (DatastoreStatus: unique, stored and unreferenced bytes,
// chunk count, the ratios): one pass over every snapshot's manifests and every chunk file's
// header. That is O(chunks) file opens, far too slow for each status call on a big datastore,
// so DatastoreService keeps the last count per datastore and recounts in the background when
// it is older than kRecountAfter (accounting_time tells when it was counted).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "offhost/common/status.h"
#include "offhost/grpc/service_context.h"
#include "offhost/storage/datastore.h"
#include "offhost/v1/datastore.pb.h"

namespace offhost::grpcapi {

inline constexpr std::chrono::minutes kRecountAfter{15};

struct SpaceAccounting {
  uint64_t logical_bytes = 0;         // of the snapshots whose manifests were walked
  uint64_t unique_bytes = 0;          // uncompressed bytes of the distinct chunks they use
  uint64_t stored_bytes = 0;          // bytes of all chunk files
  uint64_t unreferenced_bytes = 0;    // of stored_bytes, in chunks no snapshot uses
  uint64_t gc_reclaimable_bytes = 0;  // of those, the ones older than GC's cut-off
  uint64_t chunk_count = 0;           // chunk files
  int64_t time = 0;                   // unix seconds when the count started
};

// Counts `ds`; `stop` ends it early (Cancelled). A backup committing meanwhile may leave its
// new chunks counted as unreferenced until the next count: the figures are as of `time`.
Result<SpaceAccounting> CountSpace(storage::Datastore& ds, const std::atomic<bool>& stop);

// The accounting fields of DatastoreStatus, ratios included (left 0 when undefined).
void FillSpaceAccounting(const SpaceAccounting& a, v1::DatastoreStatus* out);

// The last count of each datastore, recounted in the background: Get answers at once with
// what was counted (nothing before the first count ends) and starts a count when there is
// none yet or the last is older than kRecountAfter. One count per datastore at a time;
// destroying the accountant stops and joins them.
class SpaceAccountant {
 public:
  ~SpaceAccountant();
  std::optional<SpaceAccounting> Get(const DatastoreConfig& config);

 private:
  struct State {
    std::optional<SpaceAccounting> last;
    bool running = false;
    std::thread thread;
  };
  std::mutex mu_;
  std::map<std::string, State> states_;
  std::atomic<bool> stop_{false};
};

}  // namespace offhost::grpcapi
