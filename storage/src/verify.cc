#include "offhost/storage/verify.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "offhost/storage/chunk_codec.h"
#include "verify_catalog.h"

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
  // Unless the snapshot was pruned while this verify ran: a garbage collection may then have
  // removed its chunks, or its manifest, which is not damage. Whether it still exists is asked
  // only of a snapshot that looks damaged.
  std::optional<std::set<std::pair<std::string, std::string>>> listed_now;
  auto pruned_meanwhile = [&](const SnapshotRecord& snap) -> Result<bool> {
    if (!listed_now) {
      OFFHOST_ASSIGN_OR_RETURN(auto now, ds.ListSnapshots());
      listed_now.emplace();
      for (const auto& s : now) listed_now->emplace(s.vm, s.id);
    }
    return listed_now->count({snap.vm, snap.id}) == 0;
  };
  for (const auto& snap : snapshots) {
    std::vector<std::pair<std::string, std::map<ChunkId, ChunkUse>>> disks;
    std::unordered_map<ChunkId, std::string, ChunkIdHash> missing;  // chunk -> its path
    Status read = Status::OK();
    for (const auto& disk : snap.disks) {
      std::map<ChunkId, ChunkUse> uses;
      read = ds.ForEachManifestEntry(snap, disk.name, [&](const ManifestEntry& e) {
        if (e.kind != ManifestEntryKind::kChunk) return Status::OK();
        if (!damaged.count(e.chunk)) {
          if (present.count(e.chunk)) return Status::OK();
          missing.emplace(e.chunk, ds.chunks().Locate(e.chunk));
        }
        ChunkUse& use = uses[e.chunk];
        if (use.offsets.size() < kOffsetsShown) use.offsets.push_back(e.offset);
        ++use.count;
        return Status::OK();
      });
      if (!read.ok()) break;
      disks.emplace_back(disk.name, std::move(uses));
    }
    bool suspect = !read.ok();  // or it uses a damaged or missing chunk (all `uses` holds)
    for (const auto& [disk, uses] : disks) suspect |= !uses.empty();
    if (suspect) {
      OFFHOST_ASSIGN_OR_RETURN(bool pruned, pruned_meanwhile(snap));
      if (pruned) continue;
      OFFHOST_RETURN_IF_ERROR(read);
    }
    ++report.snapshots_checked;
    for (const auto& [id, path] : missing) {
      damaged.emplace(id, DamagedChunk{id, path, "missing", {}});
    }
    for (auto& [disk, uses] : disks) {
      for (auto& [id, use] : uses) {
        use.vm = snap.vm;
        use.snapshot = snap.id;
        use.disk = disk;
        damaged[id].uses.push_back(std::move(use));
      }
    }
  }
  // A chunk that vanished during the scan and that no snapshot uses was collected, not lost.
  for (auto it = damaged.begin(); it != damaged.end();) {
    std::error_code ec;
    bool collected = it->second.uses.empty() && !std::filesystem::exists(it->second.path, ec);
    it = collected ? damaged.erase(it) : std::next(it);
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
  OFFHOST_RETURN_IF_ERROR(CheckCatalogs(ds, snapshots, &report));
  return report;
}

}  // namespace offhost::storage
