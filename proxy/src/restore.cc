// Whole-disk restore: the calling thread walks the manifest; workers fetch, decode, prove and
// write chunks. Writes go to distinct offsets, so their order does not matter.
#include "offhost/proxy/restore.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string_view>
#include <thread>

#include "bounded_queue.h"
#include "decoded_chunk_cache.h"
#include "offhost/storage/read_lease.h"

namespace offhost::proxy {
namespace {

using storage::ManifestEntry;
using storage::ManifestEntryKind;

class DiskRestore {
 public:
  DiskRestore(storage::Datastore& ds, const storage::SnapshotRecord& snap, std::string disk,
              BlockDevice& target, const RestoreOptions& options)
      : ds_(ds), snap_(snap), disk_(std::move(disk)), target_(target), options_(options) {}

  Result<RestoreResult> Run() {
    int threads = options_.threads > 0
                      ? options_.threads
                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    BoundedQueue<std::vector<ManifestEntry>> queue(2 * static_cast<size_t>(threads));
    DecodedChunkCache decoded(ds_.chunks(), kKeepDecodedBytesPerWorker * threads);
    decoded_ = &decoded;
    std::vector<std::thread> workers;
    for (int i = 0; i < threads; ++i) workers.emplace_back([&] { WorkerLoop(queue); });
    // The chunk entries of one chunk-size range go to one worker together: after incremental
    // patches they are slices of a few chunks, each decoded once.
    const uint64_t range = ds_.chunker().max_chunk_size();
    std::vector<ManifestEntry> job;
    auto flush = [&] {
      if (!job.empty()) queue.Push(std::move(job));
      job.clear();
    };
    Status st = ds_.ForEachManifestEntry(snap_, disk_, [&](const ManifestEntry& e) {
      if (Failed()) return Status::Cancelled("stopped");
      if (options_.cancel && options_.cancel->load()) return Status::Cancelled("restore cancelled");
      if (!job.empty() && job.front().offset / range != e.offset / range) flush();
      if (e.kind == ManifestEntryKind::kChunk) {
        job.push_back(e);
        return Status::OK();
      }
      if (!options_.target_is_zeroed) {
        OFFHOST_RETURN_IF_ERROR(target_.WriteZeroes(e.offset, e.length));
      }
      if (options_.counters) options_.counters->done_bytes += e.length;
      return Status::OK();
    });
    if (st.ok()) flush();
    queue.Close();
    for (auto& w : workers) w.join();
    if (!failure_.ok()) return failure_;
    OFFHOST_RETURN_IF_ERROR(st);
    OFFHOST_RETURN_IF_ERROR(target_.Flush());
    return result_;
  }

 private:
  // Beyond the ranges being restored, this much decoded data stays for the next ranges per
  // worker: the runs an incremental packed into one chunk are slices of it in many ranges
  // near each other, and each is then decoded once.
  static constexpr size_t kKeepDecodedBytesPerWorker = 32u << 20;

  void WorkerLoop(BoundedQueue<std::vector<ManifestEntry>>& queue) {
    while (auto job = queue.Pop()) {
      for (const ManifestEntry& e : *job) {
        if (Failed()) break;
        Status st = RestoreEntry(e);
        if (!st.ok()) {
          std::lock_guard<std::mutex> lock(mu_);
          if (failure_.ok()) failure_ = st;
        }
      }
    }
  }

  Status RestoreEntry(const ManifestEntry& e) {
    auto damaged = [&](const Status& why) {
      return Status::Corruption(
          "chunk " + e.chunk.Hex() + " (" + ds_.chunks().Locate(e.chunk) + ") for disk offset " +
          std::to_string(e.offset) + " of " + snap_.vm + "@" + snap_.id + " disk " + disk_ +
          " is damaged: " + why.message() +
          "; nothing wrong was written — run 'offhost verify --datastore " + ds_.dir() + "'");
    };
    bool damaged_chunk = false;
    auto decoded = decoded_->Get(e.chunk, &damaged_chunk);
    if (!decoded.ok()) return damaged_chunk ? damaged(decoded.status()) : decoded.status();
    const std::string* data = decoded->get();
    if (data->size() < uint64_t{e.chunk_offset} + e.length) {
      return damaged(Status::Corruption("chunk holds " + std::to_string(data->size()) +
                                        " bytes, the manifest needs " +
                                        std::to_string(uint64_t{e.chunk_offset} + e.length)));
    }
    OFFHOST_ASSIGN_OR_RETURN(uint64_t written,
                             WriteData(e.offset, {data->data() + e.chunk_offset, e.length}));
    std::lock_guard<std::mutex> lock(mu_);
    result_.bytes_written += written;
    ++result_.chunks;
    if (options_.counters) {
      options_.counters->done_bytes += e.length;
      options_.counters->bytes_written += written;
    }
    return Status::OK();
  }

  // Writes a chunk's bytes; on a zeroed target, runs of zero blocks are skipped so the
  // restored file is as sparse as the source was.
  Result<uint64_t> WriteData(uint64_t offset, std::string_view data) {
    if (!options_.target_is_zeroed) {
      OFFHOST_RETURN_IF_ERROR(target_.Write(offset, data));
      return static_cast<uint64_t>(data.size());
    }
    constexpr size_t kBlock = 4096;
    static const char kZeroBlock[kBlock] = {};
    uint64_t written = 0;
    size_t pos = 0;
    while (pos < data.size()) {
      auto block_len = [&](size_t p) { return std::min(kBlock, data.size() - p); };
      auto is_zero = [&](size_t p) {
        return std::memcmp(data.data() + p, kZeroBlock, block_len(p)) == 0;
      };
      if (is_zero(pos)) {
        pos += block_len(pos);
        continue;
      }
      size_t end = pos;
      while (end < data.size() && !is_zero(end)) end += block_len(end);
      OFFHOST_RETURN_IF_ERROR(target_.Write(offset + pos, {data.data() + pos, end - pos}));
      written += end - pos;
      pos = end;
    }
    return written;
  }

  bool Failed() {
    std::lock_guard<std::mutex> lock(mu_);
    return !failure_.ok();
  }

  storage::Datastore& ds_;
  const storage::SnapshotRecord& snap_;
  std::string disk_;
  BlockDevice& target_;
  const RestoreOptions& options_;
  DecodedChunkCache* decoded_ = nullptr;
  std::mutex mu_;
  Status failure_;
  RestoreResult result_;
};

}  // namespace

Result<RestoreResult> RestoreDisk(storage::Datastore& ds, const storage::SnapshotRecord& snap,
                                  const std::string& disk, BlockDevice& target,
                                  const RestoreOptions& options) {
  auto start = std::chrono::steady_clock::now();
  uint64_t size = 0;
  for (const auto& d : snap.disks) {
    if (d.name == disk) size = d.size;
  }
  if (target.size() < size) {
    return Status::InvalidArgument(target.description() + " holds " +
                                   std::to_string(target.size()) + " bytes but disk " + disk +
                                   " needs " + std::to_string(size));
  }
  // A prune meanwhile keeps the snapshot (and so GC its chunks) until the restore is done.
  OFFHOST_ASSIGN_OR_RETURN(auto lease, storage::SnapshotReadLease::Take(ds, snap));
  if (options.counters) options.counters->total_bytes += size;
  DiskRestore restore(ds, snap, disk, target, options);
  OFFHOST_ASSIGN_OR_RETURN(RestoreResult r, restore.Run());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace offhost::proxy
