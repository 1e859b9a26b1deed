// One disk: the calling thread plans chunks from the allocation map and reads them in
// batches; worker threads hash, look up, compress and store; results re-enter the manifest in
// disk order. A fixed pool of chunk buffers bounds memory.
#include "disk_backup.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "bounded_queue.h"
#include "offhost/storage/chunk_codec.h"

namespace offhost::proxy {
namespace {

using storage::ChunkId;
using storage::ManifestEntry;
using storage::ManifestEntryKind;

bool AllZero(const char* p, size_t n) {
  constexpr size_t kProbe = 16;
  if (n <= kProbe) return std::all_of(p, p + n, [](char c) { return c == 0; });
  for (size_t i = 0; i < kProbe; ++i) {
    if (p[i]) return false;
  }
  return std::memcmp(p, p + kProbe, n - kProbe) == 0;  // zero prefix + shifted equality
}

class BufferPool {
 public:
  BufferPool(size_t count, size_t size) : storage_(count * size) {
    for (size_t i = 0; i < count; ++i) free_.push_back(storage_.data() + i * size);
  }
  char* Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty(); });
    char* b = free_.back();
    free_.pop_back();
    return b;
  }
  void Release(char* b) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(b);
    cv_.notify_one();
  }

 private:
  std::vector<char> storage_;
  std::vector<char*> free_;
  std::mutex mu_;
  std::condition_variable cv_;
};

struct Job {
  uint64_t seq;
  uint64_t offset;
  uint32_t length;
  char* buffer;
};

class DiskBackup {
 public:
  DiskBackup(storage::Datastore& ds, BlockDevice& dev, storage::DiskManifestWriter& manifest,
             const BackupOptions& options)
      : ds_(ds), dev_(dev), manifest_(manifest), options_(options) {
    threads_ = options.threads > 0 ? options.threads
                                   : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    chunk_size_ = ds.chunker().max_chunk_size();
    batch_chunks_ = std::max<size_t>(1, options.read_ahead / chunk_size_);
  }

  Result<storage::DiskRecord> Run() {
    BufferPool pool(batch_chunks_ + 2 * static_cast<size_t>(threads_) + 1, chunk_size_);
    BoundedQueue<Job> queue(2 * static_cast<size_t>(threads_));
    pool_ = &pool;
    std::vector<std::thread> workers;
    for (int i = 0; i < threads_; ++i) workers.emplace_back([&] { WorkerLoop(queue); });
    Status st = ReadLoop(queue);
    queue.Close();
    for (auto& w : workers) w.join();
    if (!st.ok()) return st;
    if (!failure_.ok()) return failure_;
    if (next_seq_ != seq_) return Status::IOError("internal: backup lost chunk results");
    return record_;
  }

 private:
  // Plans and reads chunks in disk order; hands buffers to the workers.
  Status ReadLoop(BoundedQueue<Job>& queue) {
    const uint64_t size = dev_.size();
    std::vector<Job> batch;
    std::vector<ReadRequest> reads;
    uint64_t offset = 0;
    while (offset < size) {
      if (Failed()) return Status::OK();
      if (options_.cancel && options_.cancel->load()) {
        Flush(queue, &batch, &reads).IgnoreError();
        return Status::Cancelled("backup cancelled");
      }
      storage::ChunkRange range = ds_.chunker().ChunkAt(offset, size);
      uint64_t end = range.offset + range.length;
      OFFHOST_RETURN_IF_ERROR(CoverExtents(end));
      std::vector<Extent> data;
      bool any_zero = false;
      for (const Extent& e : extents_) {
        uint64_t s = std::max(e.offset, range.offset), t = std::min(e.offset + e.length, end);
        if (s >= t) continue;
        if (e.type == ExtentType::kData) data.push_back({s, t - s, e.type});
        if (e.type == ExtentType::kZero) any_zero = true;
      }
      if (data.empty()) {
        auto kind = any_zero ? ManifestEntryKind::kZero : ManifestEntryKind::kUnallocated;
        {
          std::lock_guard<std::mutex> lock(stats_mu_);
          (any_zero ? record_.zero_bytes : record_.unallocated_bytes) += range.length;
        }
        OFFHOST_RETURN_IF_ERROR(Complete(seq_++, {range.offset, range.length, kind, {}}));
      } else {
        Job job{seq_++, range.offset, range.length, pool_->Acquire()};
        // Holes and zero extents inside the chunk are not read: they are zeroes.
        std::memset(job.buffer, 0, range.length);
        for (const Extent& d : data) {
          reads.push_back({d.offset, {job.buffer + (d.offset - range.offset), d.length}});
          record_.bytes_read += d.length;
          if (options_.counters) options_.counters->bytes_read += d.length;
        }
        batch.push_back(job);
        if (batch.size() >= batch_chunks_) OFFHOST_RETURN_IF_ERROR(Flush(queue, &batch, &reads));
      }
      offset = end;
      DropExtentsBefore(offset);
    }
    return Flush(queue, &batch, &reads);
  }

  Status Flush(BoundedQueue<Job>& queue, std::vector<Job>* batch,
               std::vector<ReadRequest>* reads) {
    Status st = reads->empty() ? Status::OK() : dev_.Read(*reads);
    reads->clear();
    for (const Job& j : *batch) {
      if (!st.ok() || !queue.Push(j)) pool_->Release(j.buffer);
    }
    batch->clear();
    return st;
  }

  // Makes extents_ cover the disk up to `end`.
  Status CoverExtents(uint64_t end) {
    uint64_t covered = extents_.empty() ? extents_from_ : extents_.back().offset + extents_.back().length;
    while (covered < end) {
      OFFHOST_ASSIGN_OR_RETURN(auto more, dev_.Extents(covered, dev_.size() - covered));
      if (more.empty() || more.front().offset != covered) {
        return Status::IOError(dev_.description() + " returned an allocation map that does "
                               "not start at the requested offset " + std::to_string(covered));
      }
      for (const auto& e : more) extents_.push_back(e);
      covered = extents_.back().offset + extents_.back().length;
    }
    return Status::OK();
  }

  void DropExtentsBefore(uint64_t offset) {
    size_t drop = 0;
    while (drop < extents_.size() && extents_[drop].offset + extents_[drop].length <= offset) {
      ++drop;
    }
    if (drop > 0) {
      extents_from_ = extents_[drop - 1].offset + extents_[drop - 1].length;
      extents_.erase(extents_.begin(), extents_.begin() + static_cast<long>(drop));
    }
  }

  void WorkerLoop(BoundedQueue<Job>& queue) {
    storage::ChunkEncoder encoder(ds_.config().zstd_level);
    std::string encoded;
    while (auto job = queue.Pop()) {
      Status st = Failed() ? Status::OK() : Process(*job, encoder, &encoded);
      pool_->Release(job->buffer);
      if (!st.ok()) Fail(st);
    }
  }

  Status Process(const Job& job, storage::ChunkEncoder& encoder, std::string* encoded) {
    std::span<const char> data(job.buffer, job.length);
    if (AllZero(job.buffer, job.length)) {
      std::lock_guard<std::mutex> lock(stats_mu_);
      record_.zero_bytes += job.length;
      return Complete(job.seq, {job.offset, job.length, ManifestEntryKind::kZero, {}});
    }
    ChunkId id = ChunkId::Of(data);
    OFFHOST_ASSIGN_OR_RETURN(bool present, ds_.chunks().Contains(id));
    bool wrote = false;
    if (!present) {
      OFFHOST_RETURN_IF_ERROR(encoder.Encode(id, data, encoded));
      OFFHOST_ASSIGN_OR_RETURN(wrote, ds_.chunks().Put(id, *encoded));
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      ++record_.chunks;
      if (wrote) {
        ++record_.new_chunks;
        record_.new_bytes += encoded->size();
        if (options_.counters) options_.counters->new_bytes += encoded->size();
      }
    }
    return Complete(job.seq, {job.offset, job.length, ManifestEntryKind::kChunk, id});
  }

  // Puts a chunk's manifest entry back into disk order.
  Status Complete(uint64_t seq, const ManifestEntry& e) {
    std::lock_guard<std::mutex> lock(order_mu_);
    pending_.emplace(seq, e);
    while (!pending_.empty() && pending_.begin()->first == next_seq_) {
      const ManifestEntry& next = pending_.begin()->second;
      OFFHOST_RETURN_IF_ERROR(manifest_.Add(next));
      if (options_.counters) options_.counters->done_bytes += next.length;
      pending_.erase(pending_.begin());
      ++next_seq_;
    }
    return Status::OK();
  }

  bool Failed() {
    std::lock_guard<std::mutex> lock(stats_mu_);
    return !failure_.ok();
  }
  void Fail(const Status& st) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    if (failure_.ok()) failure_ = st;
  }

  storage::Datastore& ds_;
  BlockDevice& dev_;
  storage::DiskManifestWriter& manifest_;
  const BackupOptions& options_;
  int threads_;
  uint32_t chunk_size_;
  size_t batch_chunks_;
  BufferPool* pool_ = nullptr;

  std::vector<Extent> extents_;  // allocation map ahead of the read position
  uint64_t extents_from_ = 0;
  uint64_t seq_ = 0;

  std::mutex stats_mu_;
  storage::DiskRecord record_;
  Status failure_;

  std::mutex order_mu_;
  std::map<uint64_t, ManifestEntry> pending_;
  uint64_t next_seq_ = 0;
};

}  // namespace

Result<storage::DiskRecord> BackupOneDisk(storage::Datastore& ds, BlockDevice& device,
                                          storage::DiskManifestWriter& manifest,
                                          const BackupOptions& options) {
  DiskBackup backup(ds, device, manifest, options);
  return backup.Run();
}

}  // namespace offhost::proxy
