#include "space_accounting.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <unordered_set>
#include <vector>

#include "datastores.h"
#include "file_info.h"
#include "offhost/storage/chunk_codec.h"
#include "offhost/storage/gc.h"

namespace offhost::grpcapi {
namespace {

// A chunk file's size and, from its header, the uncompressed size of the chunk. A chunk that
// vanished since it was listed (moved aside by verify) counts as nothing.
Status StatChunk(const std::string& path, bool want_raw, uint64_t* file_size, uint64_t* raw,
                 int64_t* mtime) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? Status::OK() : Status::FromErrno("open " + path, errno);
  struct stat st {};
  Status result;
  if (::fstat(fd, &st) != 0) {
    result = Status::FromErrno("stat " + path, errno);
  } else {
    *file_size = static_cast<uint64_t>(st.st_size);
    *mtime = static_cast<int64_t>(st.st_mtim.tv_sec);
    char header[storage::kChunkHeaderSize];
    if (want_raw && ::pread(fd, header, sizeof header, 0) == static_cast<ssize_t>(sizeof header)) {
      // A damaged header is verify's to report; its chunk adds no unique bytes here.
      auto h = storage::DecodeChunkHeaderOnly({header, sizeof header}, *file_size);
      if (h.ok()) *raw = h->raw_size;
    }
  }
  ::close(fd);
  return result;
}

}  // namespace

Result<SpaceAccounting> CountSpace(storage::Datastore& ds, const std::atomic<bool>& stop) {
  SpaceAccounting a;
  a.time = static_cast<int64_t>(std::time(nullptr));
  // What GC would free is counted against the cut-off a GC starting now would use.
  OFFHOST_ASSIGN_OR_RETURN(int64_t cutoff,
                           storage::GcCutoff(ds, storage::GcOptions().min_age_seconds));
  std::unordered_set<storage::ChunkId, storage::ChunkIdHash> referenced;
  OFFHOST_ASSIGN_OR_RETURN(auto snaps, ds.ListSnapshots());
  for (const auto& snap : snaps) {
    a.logical_bytes += snap.logical_bytes();
    for (const auto& disk : snap.disks) {
      OFFHOST_RETURN_IF_ERROR(
          ds.ForEachManifestEntry(snap, disk.name, [&](const storage::ManifestEntry& e) {
            if (stop) return Status::Cancelled("space accounting stopped");
            if (e.kind == storage::ManifestEntryKind::kChunk) referenced.insert(e.chunk);
            return Status::OK();
          }));
    }
  }
  Status walked = ds.chunks().ForEach([&](const storage::ChunkId& id) {
    if (stop) return Status::Cancelled("space accounting stopped");
    bool used = referenced.count(id) != 0;
    uint64_t size = 0, raw = 0;
    int64_t mtime = 0;
    Status st = StatChunk(ds.chunks().Locate(id), used, &size, &raw, &mtime);
    if (!st.ok() || size == 0) return st;  // size 0: gone since it was listed
    ++a.chunk_count;
    a.stored_bytes += size;
    if (used) {
      a.unique_bytes += raw;
    } else {
      a.unreferenced_bytes += size;
      if (mtime < cutoff) a.gc_reclaimable_bytes += size;
    }
    return Status::OK();
  });
  if (!walked.ok()) return walked;
  return a;
}

void FillSpaceAccounting(const SpaceAccounting& a, v1::DatastoreStatus* out) {
  out->set_unique_bytes(a.unique_bytes);
  out->set_stored_bytes(a.stored_bytes);
  out->set_unreferenced_bytes(a.unreferenced_bytes);
  out->set_gc_reclaimable_bytes(a.gc_reclaimable_bytes);
  out->set_chunk_count(a.chunk_count);
  SetTime(a.time, out->mutable_accounting_time());
  uint64_t used = a.stored_bytes - a.unreferenced_bytes;
  auto ratio = [](uint64_t num, uint64_t den) {
    return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
  };
  // Against the logical bytes of the snapshots that were counted, not of those committed since.
  out->set_dedupe_ratio(ratio(a.logical_bytes, a.unique_bytes));
  out->set_compression_ratio(ratio(a.unique_bytes, used));
  out->set_total_ratio(ratio(a.logical_bytes, used));
}

SpaceAccountant::~SpaceAccountant() {
  stop_ = true;
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, state] : states_) threads.push_back(std::move(state.thread));
  }
  for (auto& t : threads) {
    if (t.joinable()) t.join();  // each takes mu_ once more as it ends
  }
}

std::optional<SpaceAccounting> SpaceAccountant::Get(const DatastoreConfig& config) {
  std::lock_guard<std::mutex> lock(mu_);
  State& state = states_[config.name];
  auto stale = std::chrono::system_clock::now() - kRecountAfter;
  bool due = !state.last || std::chrono::system_clock::from_time_t(state.last->time) < stale;
  if (due && !state.running && !stop_) {
    if (state.thread.joinable()) state.thread.join();  // the previous count, already ended
    state.running = true;
    state.thread = std::thread([this, config] {
      std::optional<SpaceAccounting> counted;
      if (auto ds = OpenDatastore(config); ds.ok()) {
        if (auto a = CountSpace(**ds, stop_); a.ok()) counted = *a;
      }
      std::lock_guard<std::mutex> done(mu_);
      State& s = states_[config.name];
      if (counted) s.last = counted;
      s.running = false;
    });
  }
  return state.last;
}

}  // namespace offhost::grpcapi
