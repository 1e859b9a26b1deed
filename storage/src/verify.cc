#include "offhost/storage/verify.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "offhost/storage/chunk_codec.h"

namespace offhost::storage {
namespace {

constexpr size_t kOffsetsShown = 8;

// Checks every stored chunk on `threads` threads; returns the damaged ones.
Status CheckAllChunks(ChunkStore& store, const std::vector<ChunkId>& ids, int threads,
                      const VerifyOptions& options, VerifyReport* report,
                      std::unordered_map<ChunkId, DamagedChunk, ChunkIdHash>* damaged) {
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> done{0}, bytes{0};
  std::mutex mu;
  Status first_error;
  auto worker = [&] {
    std::string raw;
    for (size_t i; (i = next.fetch_add(1)) < ids.size();) {
      const ChunkId& id = ids[i];
      auto file = store.Get(id);
      Status st = file.ok() ? DecodeChunk(id, *file, &raw) : file.status();
      if (file.ok()) bytes += file->size();
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (st.code() == StatusCode::kIOError && first_error.ok()) first_error = st;
        (*damaged)[id] = DamagedChunk{id, store.Locate(id), st.message(), {}};
      }
      uint64_t n = ++done;
      if (options.progress && n % 256 == 0) options.progress(n, ids.size());
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (options.progress) options.progress(ids.size(), ids.size());
  report->chunks_checked = ids.size();
  report->bytes_checked = bytes;
  return first_error;
}

}  // namespace

Result<VerifyReport> VerifyDatastore(Datastore& ds, const VerifyOptions& options) {
  int threads = options.threads > 0 ? options.threads
                                    : std::max(1u, std::thread::hardware_concurrency());
  // Snapshots first: a snapshot committed after this listing is not checked, but every chunk
  // a listed snapshot uses was durable before the listing, so it is in the chunk scan below.
  OFFHOST_ASSIGN_OR_RETURN(auto snapshots, ds.ListSnapshots());
  std::vector<ChunkId> ids;
  OFFHOST_RETURN_IF_ERROR(ds.chunks().ForEach([&](const ChunkId& id) {
    ids.push_back(id);
    return Status::OK();
  }));
  VerifyReport report;
  std::unordered_map<ChunkId, DamagedChunk, ChunkIdHash> damaged;
  OFFHOST_RETURN_IF_ERROR(CheckAllChunks(ds.chunks(), ids, threads, options, &report, &damaged));
  std::unordered_set<ChunkId, ChunkIdHash> present(ids.begin(), ids.end());
  ids = {};

  // Map damage to its users; a chunk a manifest names but the store lacks is damage too.
  for (const auto& snap : snapshots) {
    ++report.snapshots_checked;
    for (const auto& disk : snap.disks) {
      std::map<ChunkId, ChunkUse> uses;
      OFFHOST_RETURN_IF_ERROR(ds.ForEachManifestEntry(snap, disk.name, [&](const ManifestEntry& e) {
        if (e.kind != ManifestEntryKind::kChunk) return Status::OK();
        auto it = damaged.find(e.chunk);
        if (it == damaged.end()) {
          if (present.count(e.chunk)) return Status::OK();
          it = damaged.emplace(e.chunk, DamagedChunk{e.chunk, ds.chunks().Locate(e.chunk),
                                                     "missing", {}})
                   .first;
        }
        ChunkUse& use = uses[e.chunk];
        if (use.offsets.size() < kOffsetsShown) use.offsets.push_back(e.offset);
        ++use.count;
        return Status::OK();
      }));
      for (auto& [id, use] : uses) {
        use.vm = snap.vm;
        use.snapshot = snap.id;
        use.disk = disk.name;
        damaged[id].uses.push_back(std::move(use));
      }
    }
  }
  for (auto& [id, d] : damaged) {
    if (options.quarantine && d.reason != "missing") {
      auto moved = ds.chunks().Quarantine(id);
      if (moved.ok()) d.moved_to = *moved;
    }
    report.damaged.push_back(std::move(d));
  }
  std::sort(report.damaged.begin(), report.damaged.end(),
            [](const DamagedChunk& a, const DamagedChunk& b) { return a.id < b.id; });
  return report;
}

}  // namespace offhost::storage
