// One disk: the calling thread plans chunks from the allocation map (and, for incrementals,
// the dirty map) and reads them in batches; worker threads hash, look up, compress and store;
// results re-enter the manifest in disk order. A fixed pool of chunk buffers bounds memory.
#include "disk_backup.h"

#include <sys/mman.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <unordered_set>
#include <utility>

#include "bounded_queue.h"
#include "chunk_claimer.h"
#include "decoded_chunk_cache.h"
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

// The memory of the last backup's buffer pool, kept for the next backup in this process (offhostd
// runs backup after backup). Memory the kernel hands out afresh costs a page fault per page
// touched, and far more in a VM whose free memory went back to its host (about 2 ms per MiB
// here, a tenth of a small incremental); kept memory is already there. One pool is kept: a
// second backup running at the same time maps its own, and the last one given back stays.
class KeptPoolMemory {
 public:
  static char* Take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(Slot().mu);
      if (Slot().memory && Slot().bytes == bytes) return std::exchange(Slot().memory, nullptr);
    }
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    ::madvise(p, bytes, MADV_HUGEPAGE);  // advice: without transparent huge pages, 4 KiB pages
    return static_cast<char*>(p);
  }
  // Keeps `memory` instead of the pool kept so far (the newest pool is the likeliest size of the
  // next).
  static void Give(char* memory, size_t bytes) {
    std::lock_guard<std::mutex> lock(Slot().mu);
    if (Slot().memory) ::munmap(Slot().memory, Slot().bytes);
    Slot().memory = memory;
    Slot().bytes = bytes;
  }

 private:
  struct Kept {
    std::mutex mu;
    char* memory = nullptr;
    size_t bytes = 0;
  };
  static Kept& Slot() {
    static Kept kept;  // never unmapped: the process's exit does that
    return kept;
  }
};

// The buffer pool of one disk's backup: `count` buffers of a chunk each (and a chunk header in
// front, on a 4 KiB boundary), of which the first `first_limit` serve until the backup has read
// kRampBytes (see DiskBackup).
struct PoolShape {
  size_t count;
  size_t stride;
  size_t first_limit;
  size_t bytes() const { return count * stride; }

  static PoolShape Of(const storage::Datastore& ds, const BackupOptions& options);
};

int WorkerThreads(const BackupOptions& options) {
  return options.threads > 0 ? options.threads
                             : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Chunks read together once the read-ahead is at its full size.
size_t ReadBatchChunks(const storage::Datastore& ds, const BackupOptions& options) {
  return std::max<size_t>(1, options.read_ahead / ds.chunker().max_chunk_size());
}

PoolShape PoolShape::Of(const storage::Datastore& ds, const BackupOptions& options) {
  const auto threads = static_cast<size_t>(WorkerThreads(options));
  constexpr size_t kBlock = storage::kDirectAlign;
  const size_t chunk = ds.chunker().max_chunk_size();
  // A read batch holds at most two buffers, and only one while it waits for another. Before
  // the ramp, one buffer per worker is not enough: a buffer is out for a read, a hash and an
  // O_DIRECT write (~10 ms for 4 MiB here) while the reader fills one in ~4 ms, so with
  // threads + 1 the reader of a 1% incremental waited 4-20 ms for buffers (median of its read
  // loop 55 ms; with threads + 2, 46 ms).
  return {ReadBatchChunks(ds, options) + 2 * threads + 1,
          (storage::kChunkHeaderSize + chunk + kBlock - 1) / kBlock * kBlock,
          std::max<size_t>(4, threads + 2)};
}

class BufferPool {
 public:
  // The memory is not initialised, so pages no job touches (an incremental reads only a few
  // ranges into pool buffers) cost nothing. It is asked for in huge pages where the kernel
  // has them: a backup that runs for a fraction of a second otherwise spends a tenth of its
  // CPU on a page fault per 4 KiB it reads into fresh buffers. It comes from the previous
  // backup where there was one (KeptPoolMemory); what a buffer held before is never read: every
  // byte of a job's range is read into it or set.
  // Each buffer has room for a chunk header in front, on a 4 KiB boundary, so a chunk that is
  // stored uncompressed is written from its buffer as it is (ChunkEncoder::EncodeInPlace).
  explicit BufferPool(const PoolShape& shape) {
    bytes_ = shape.bytes();
    storage_ = KeptPoolMemory::Take(bytes_);
    // Handed out from the start of the memory: the buffers WarmBackupBuffers touched.
    for (size_t i = shape.count; i-- > 0;) {
      free_.push_back(storage_ + i * shape.stride + storage::kChunkHeaderSize);
    }
  }
  ~BufferPool() { KeptPoolMemory::Give(storage_, bytes_); }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  // At most `n` buffers out at once (at first, all of them). Buffers are handed out last
  // released first, so a lower limit also means fewer pages ever touched.
  void SetLimit(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = n;
    cv_.notify_all();
  }
  char* Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty() && out_ < limit_; });
    char* b = free_.back();
    free_.pop_back();
    ++out_;
    return b;
  }
  void Release(char* b) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(b);
    --out_;
    cv_.notify_one();
  }

 private:
  size_t bytes_;
  size_t limit_ = SIZE_MAX;
  size_t out_ = 0;
  char* storage_ = nullptr;
  std::vector<char*> free_;
  std::mutex mu_;
  std::condition_variable cv_;
};

// A map of the disk (allocation or dirty) kept just ahead of the read position.
class ExtentWindow {
 public:
  using Fetch = std::function<Result<std::vector<Extent>>(uint64_t, uint64_t)>;
  ExtentWindow(Fetch fetch, uint64_t size, std::string what)
      : fetch_(std::move(fetch)), size_(size), what_(std::move(what)) {}

  // The parts of [start, end) of each type, after fetching as much of the map as needed.
  Result<std::vector<Extent>> Cover(uint64_t start, uint64_t end) {
    uint64_t covered = extents_.empty() ? from_ : extents_.back().offset + extents_.back().length;
    while (covered < end) {
      OFFHOST_ASSIGN_OR_RETURN(auto more, fetch_(covered, size_ - covered));
      if (more.empty() || more.front().offset != covered) {
        return Status::IOError(what_ + " does not start at the requested offset " +
                               std::to_string(covered));
      }
      for (const auto& e : more) extents_.push_back(e);
      covered = extents_.back().offset + extents_.back().length;
    }
    std::vector<Extent> out;
    for (const Extent& e : extents_) {
      uint64_t s = std::max(e.offset, start), t = std::min(e.offset + e.length, end);
      if (s < t) out.push_back({s, t - s, e.type});
    }
    return out;
  }

  void DropBefore(uint64_t offset) {
    size_t drop = 0;
    while (drop < extents_.size() && extents_[drop].offset + extents_[drop].length <= offset) {
      ++drop;
    }
    if (drop == 0) return;
    from_ = extents_[drop - 1].offset + extents_[drop - 1].length;
    extents_.erase(extents_.begin(), extents_.begin() + static_cast<long>(drop));
  }

 private:
  Fetch fetch_;
  uint64_t size_;
  std::string what_;
  std::vector<Extent> extents_;
  uint64_t from_ = 0;
};

// The previous snapshot's manifest, walked in step with the ranges of this backup.
class PreviousManifest {
 public:
  explicit PreviousManifest(std::unique_ptr<storage::ManifestReader> reader)
      : reader_(std::move(reader)) {}

  // What the previous snapshot holds for [offset, offset+length), clipped to it. Ranges must
  // be asked for in increasing order.
  Result<std::vector<ManifestEntry>> Range(uint64_t offset, uint64_t length) {
    std::vector<ManifestEntry> out;
    const uint64_t end = offset + length;
    uint64_t pos = offset;
    while (pos < end) {
      if (!have_ || cur_.offset + cur_.length <= pos) {
        OFFHOST_ASSIGN_OR_RETURN(bool more, reader_->Next(&cur_));
        if (!more) {
          return Status::Corruption("the previous snapshot's manifest ends before disk offset " +
                                    std::to_string(pos) + "; run a full backup (--full)");
        }
        have_ = true;
        continue;
      }
      out.push_back(storage::ClipManifestEntry(cur_, offset, length));
      pos = out.back().offset + out.back().length;
    }
    return out;
  }

 private:
  std::unique_ptr<storage::ManifestReader> reader_;
  ManifestEntry cur_;
  bool have_ = false;
};

// How an incremental stores a chunk-size range with changes (docs/chunking.md):
//   kWhole — read the range from the source and store it as one chunk (fulls; lost base);
//   kPatch — store only the changed runs (packed, see kPack); the rest stays slices of the
//            previous snapshot's chunks;
//   kMerge — rebuild the range from the previous snapshot plus the changes and store it as one
//            chunk, when patching would leave it too fragmented;
//   kPack  — several kPatch jobs whose changed runs are stored together as one chunk (a
//            "pack"), each run a slice of it: an incremental with scattered small changes
//            writes and syncs a few chunk files instead of one per run.
enum class JobKind { kWhole, kPatch, kMerge, kPack };

// A patched range is rebuilt once it would need more pieces than this, or once more than half
// of its data no longer comes from its main chunk: this bounds restore reads per range and
// the bytes an old chunk keeps alive for a few slices.
constexpr size_t kMaxPatchPieces = 16;

// Chunks of the previous snapshot kept decoded while merging (see DecodedChunkCache).
constexpr size_t kKeepBaseChunks = 16;

struct Piece {
  ManifestEntry entry;  // for a fresh piece only offset and length matter
  bool fresh = false;   // bytes are in the pack's buffer from `at`, to be stored as a new chunk
  size_t at = 0;
};

struct Job {
  uint64_t seq;
  uint64_t offset;
  uint32_t length;
  char* buffer;  // from the pool (kWhole, kMerge, kPack: the members' fresh runs one after another)
  JobKind kind = JobKind::kWhole;
  std::vector<Piece> pieces;        // kPatch
  std::vector<ManifestEntry> base;  // kMerge: the previous snapshot's entries for the range
  std::vector<Extent> fresh;        // kMerge: changed ranges, relative to `offset`
  std::vector<Extent> data;         // kMerge: allocated ranges, to re-read if `base` is unusable
  std::vector<Job> members;         // kPack: the patch jobs, in disk order
  size_t fresh_bytes = 0;           // kPatch: of its fresh runs; kPack: of all members
};

// The pieces of a range after its changed runs replace the previous snapshot's bytes.
std::vector<Piece> PatchPieces(const std::vector<ManifestEntry>& base,
                               const std::vector<Extent>& dirty) {
  std::vector<Piece> out;
  auto keep = [&](uint64_t from, uint64_t to) {
    for (const ManifestEntry& e : base) {
      if (e.offset + e.length <= from || e.offset >= to) continue;
      out.push_back({storage::ClipManifestEntry(e, from, to - from), false});
    }
  };
  uint64_t pos = base.front().offset;
  const uint64_t end = base.back().offset + base.back().length;
  for (const Extent& d : dirty) {
    if (d.offset > pos) keep(pos, d.offset);
    ManifestEntry fresh;
    fresh.offset = d.offset;
    fresh.length = d.length;
    out.push_back({fresh, true});
    pos = d.offset + d.length;
  }
  if (pos < end) keep(pos, end);
  return out;
}

bool TooFragmented(const std::vector<Piece>& pieces, uint64_t length) {
  if (pieces.size() > kMaxPatchPieces) return true;
  std::map<ChunkId, uint64_t> kept;
  uint64_t chunk_bytes = 0, main_chunk = 0;
  for (const Piece& p : pieces) {
    if (p.fresh || p.entry.kind == ManifestEntryKind::kChunk) chunk_bytes += p.entry.length;
    if (!p.fresh && p.entry.kind == ManifestEntryKind::kChunk) {
      main_chunk = std::max(main_chunk, kept[p.entry.chunk] += p.entry.length);
    }
  }
  return 2 * (chunk_bytes - main_chunk) > length;
}

class DiskBackup {
 public:
  DiskBackup(storage::Datastore& ds, BlockDevice& dev, storage::DiskManifestWriter& manifest,
             const BackupOptions& options, std::optional<PreviousDisk> previous)
      : ds_(ds),
        dev_(dev),
        manifest_(manifest),
        options_(options),
        allocation_([this](uint64_t o, uint64_t l) { return dev_.Extents(o, l); }, dev.size(),
                    dev.description() + " allocation map"),
        dirty_([this](uint64_t o, uint64_t l) { return dev_.DirtyExtents(o, l); }, dev.size(),
               dev.description() + " dirty map") {
    threads_ = WorkerThreads(options);
    chunk_size_ = ds.chunker().max_chunk_size();
    batch_chunks_ = ReadBatchChunks(ds, options);
    if (previous) {
      previous_ = std::make_unique<PreviousManifest>(std::move(previous->manifest));
      claimer_ =
          std::make_unique<ChunkClaimer>(ds.chunks(), std::move(previous->claims), dev.size());
    }
    record_.incremental = previous_ != nullptr;
  }

  Result<storage::DiskRecord> Run(const std::function<void()>& reads_done) {
    const PoolShape shape = PoolShape::Of(ds_, options_);
    BufferPool pool(shape);
    // A backup starts with a short pipeline (see kRampBytes), which grows once it has read
    // enough for the rest of the read-ahead to pay for itself.
    pool.SetLimit(shape.first_limit);
    // Merged ranges take their unchanged bytes from the previous snapshot's chunks; packs
    // serve many neighbouring ranges, so keep a few of them decoded.
    DecodedChunkCache base_chunks(ds_.chunks(), kKeepBaseChunks * chunk_size_);
    base_chunks_ = &base_chunks;
    BoundedQueue<Job> queue(2 * static_cast<size_t>(threads_));
    pool_ = &pool;
    std::vector<std::thread> workers;
    for (int i = 0; i < threads_; ++i) workers.emplace_back([&] { WorkerLoop(queue); });
    Status st = ReadLoop(queue);
    if (st.ok() && reads_done && WaitForMerges()) reads_done();
    queue.Close();
    for (auto& w : workers) w.join();
    if (!st.ok()) return st;
    if (!failure_.ok()) return failure_;
    if (next_seq_ != seq_) return Status::IOError("internal: backup lost chunk results");
    OFFHOST_RETURN_IF_ERROR(CheckNothingUsesMovedAside());
    return record_;
  }

 private:
  // Plans and reads chunks in disk order; hands buffers to the workers.
  Status ReadLoop(BoundedQueue<Job>& queue) {
    const uint64_t size = dev_.size();
    std::vector<Job> batch;
    std::vector<ReadRequest> reads;
    bool ramped = false;
    uint64_t batched = 0;
    for (uint64_t offset = 0; offset < size;) {
      if (Failed()) return Status::OK();
      if (options_.cancel && options_.cancel->load()) {
        Flush(queue, &batch, &reads).IgnoreError();
        return Status::Cancelled("backup cancelled");
      }
      storage::ChunkRange range = ds_.chunker().ChunkAt(offset, size);
      uint64_t end = range.offset + range.length;
      OFFHOST_RETURN_IF_ERROR(PlanChunk(range, &batch, &reads));
      // Reads go out together, as many as fit the read-ahead: scattered small changes of an
      // incremental then keep the source busy with many requests in flight. Until kRampBytes
      // are read a batch is one chunk's worth, so the workers start while the rest is read.
      const uint64_t limit = ramped ? options_.read_ahead : chunk_size_;
      if (batch_pool_jobs_ >= batch_chunks_ || batch_bytes_ >= limit ||
          batch.size() + batch_patches_ >= kMaxBatchJobs) {
        batched += batch_bytes_;
        OFFHOST_RETURN_IF_ERROR(Flush(queue, &batch, &reads));
        if (!ramped && batched >= kRampBytes) {
          ramped = true;
          pool_->SetLimit(SIZE_MAX);
        }
      }
      offset = end;
      allocation_.DropBefore(offset);
      dirty_.DropBefore(offset);
    }
    return Flush(queue, &batch, &reads);
  }

  Status PlanChunk(const storage::ChunkRange& range, std::vector<Job>* batch,
                   std::vector<ReadRequest>* reads) {
    uint64_t end = range.offset + range.length;
    OFFHOST_ASSIGN_OR_RETURN(auto alloc, allocation_.Cover(range.offset, end));
    std::vector<Extent> data;
    bool any_zero = false;
    for (const Extent& e : alloc) {
      if (e.type == ExtentType::kData) data.push_back(e);
      if (e.type == ExtentType::kZero) any_zero = true;
    }
    if (data.empty()) {  // holes and zero extents are never read
      auto kind = any_zero ? ManifestEntryKind::kZero : ManifestEntryKind::kUnallocated;
      {
        std::lock_guard<std::mutex> lock(stats_mu_);
        (any_zero ? record_.zero_bytes : record_.unallocated_bytes) += range.length;
      }
      return Complete(seq_++, {{range.offset, range.length, kind, {}}});
    }
    Job job{seq_++, range.offset, range.length, nullptr};
    std::vector<Extent> to_read = data;
    if (previous_) OFFHOST_RETURN_IF_ERROR(PlanIncremental(range, data, &job, &to_read));
    if (job.kind == JobKind::kPatch && job.pieces.empty()) return Reuse(job.seq, job.base);
    if (job.kind == JobKind::kPatch) return PlanPatchReads(std::move(job), data, batch, reads);
    job.buffer = pool_->Acquire();
    ++batch_pool_jobs_;
    batch_bytes_ += range.length;
    uint64_t covered = 0;
    for (const Extent& d : to_read) covered += d.length;
    if (covered != range.length || job.kind != JobKind::kWhole) {
      std::memset(job.buffer, 0, range.length);  // unread ranges are zeroes (or the base's bytes)
    }
    for (const Extent& d : to_read) {
      reads->push_back({d.offset, {job.buffer + (d.offset - range.offset), d.length}});
      CountRead(d.length);
    }
    batch->push_back(std::move(job));
    return Status::OK();
  }

  // A patch reads only its fresh runs (their allocated parts; the rest stays zeroes), straight
  // into the pack being filled: no buffer of its own, no copy into the pack later.
  Status PlanPatchReads(Job job, const std::vector<Extent>& data, std::vector<Job>* batch,
                        std::vector<ReadRequest>* reads) {
    size_t total = 0;
    for (const Piece& p : job.pieces) total += p.fresh ? p.entry.length : 0;
    // Packs are filled in disk order, each at most one chunk size: a restore reading the disk
    // in order then meets a pack's runs one after the other.
    if (pack_ && pack_->fresh_bytes + total > chunk_size_) ClosePack(batch);
    if (!pack_) {
      pack_.emplace(Job{0, 0, 0, pool_->Acquire()});
      pack_->kind = JobKind::kPack;
      ++batch_pool_jobs_;
    }
    char* runs = pack_->buffer + pack_->fresh_bytes;
    size_t at = pack_->fresh_bytes, covered = 0;
    for (Piece& p : job.pieces) {
      if (!p.fresh) continue;
      p.at = at;
      for (const Extent& d : data) {
        uint64_t s = std::max(d.offset, p.entry.offset);
        uint64_t t = std::min(d.offset + d.length, p.entry.offset + p.entry.length);
        if (s >= t) continue;
        reads->push_back({s, {pack_->buffer + p.at + (s - p.entry.offset), t - s}});
        CountRead(t - s);
        covered += t - s;
      }
      at += p.entry.length;
    }
    if (covered != total) std::memset(runs, 0, total);  // before the reads fill it
    job.fresh_bytes = total;
    pack_->fresh_bytes += total;
    batch_bytes_ += total;
    pack_->members.push_back(std::move(job));
    ++batch_patches_;
    return Status::OK();
  }

  void ClosePack(std::vector<Job>* batch) {
    batch->push_back(std::move(*pack_));
    pack_.reset();
  }

  // Decides how an incremental stores `range` (see JobKind) and what it reads. An unchanged
  // range comes back as kPatch with no pieces and `base` set: nothing to read.
  Status PlanIncremental(const storage::ChunkRange& range, const std::vector<Extent>& data,
                         Job* job, std::vector<Extent>* to_read) {
    const uint64_t end = range.offset + range.length;
    OFFHOST_ASSIGN_OR_RETURN(auto dirty_map, dirty_.Cover(range.offset, end));
    std::vector<Extent> dirty;
    uint64_t dirty_len = 0;
    for (const Extent& e : dirty_map) {
      if (e.type != ExtentType::kData) continue;
      dirty.push_back(e);
      dirty_len += e.length;
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      record_.dirty_bytes += dirty_len;
    }
    OFFHOST_ASSIGN_OR_RETURN(auto base, previous_->Range(range.offset, range.length));
    for (const ManifestEntry& e : base) {
      if (e.kind != ManifestEntryKind::kChunk) continue;
      // The chunk must still be in the store; the previous commit already made it durable.
      OFFHOST_ASSIGN_OR_RETURN(bool present, claimer_->IsStored(e.chunk, end));
      if (!present) return Status::OK();  // moved aside as damaged: read the whole range again
    }
    if (dirty.empty()) {
      job->kind = JobKind::kPatch;
      job->base = std::move(base);
      return Status::OK();
    }
    *to_read = Intersect(dirty, data);
    auto pieces = PatchPieces(base, dirty);
    if (!TooFragmented(pieces, range.length)) {
      job->kind = JobKind::kPatch;
      job->pieces = std::move(pieces);
      return Status::OK();
    }
    job->kind = JobKind::kMerge;
    job->base = std::move(base);
    job->data = data;
    for (const Extent& d : dirty) job->fresh.push_back({d.offset - range.offset, d.length, d.type});
    return Status::OK();
  }

  // An unchanged range: the previous snapshot's entries, counted like fresh ones.
  Status Reuse(uint64_t seq, const std::vector<ManifestEntry>& base) {
    for (const ManifestEntry& e : base) CountKept(e);
    return Complete(seq, base);
  }

  void CountKept(const ManifestEntry& e) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    record_.reused_bytes += e.length;
    if (e.kind == ManifestEntryKind::kChunk) ++record_.chunks;
    if (e.kind == ManifestEntryKind::kZero) record_.zero_bytes += e.length;
    if (e.kind == ManifestEntryKind::kUnallocated) record_.unallocated_bytes += e.length;
  }

  static std::vector<Extent> Intersect(const std::vector<Extent>& a, const std::vector<Extent>& b) {
    std::vector<Extent> out;
    for (const Extent& x : a) {
      for (const Extent& y : b) {
        uint64_t s = std::max(x.offset, y.offset);
        uint64_t t = std::min(x.offset + x.length, y.offset + y.length);
        if (s < t) out.push_back({s, t - s, ExtentType::kData});
      }
    }
    return out;
  }

  void CountRead(uint64_t n) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    record_.bytes_read += n;
    if (options_.counters) options_.counters->bytes_read += n;
  }

  // Reads `reads` from the source. With bandwidth limits, in parts of about 1 MiB, each read
  // when the limits allow it, so the rate is even rather than one read-ahead batch at a time.
  // Without limits, one call: the benchmarked path is unchanged.
  Status ReadSource(std::span<const ReadRequest> reads) {
    if (!options_.throttle) return dev_.Read(reads);
    constexpr uint64_t kPart = 1u << 20;
    std::vector<ReadRequest> part;
    uint64_t bytes = 0;
    auto flush = [&]() -> Status {
      if (part.empty()) return Status::OK();
      OFFHOST_RETURN_IF_ERROR(options_.throttle(bytes));
      OFFHOST_RETURN_IF_ERROR(dev_.Read(part));
      part.clear();
      bytes = 0;
      return Status::OK();
    };
    for (const ReadRequest& r : reads) {
      for (uint64_t at = 0; at < r.buffer.size();) {
        uint64_t n = std::min<uint64_t>(r.buffer.size() - at, kPart - bytes);
        part.push_back({r.offset + at, r.buffer.subspan(at, n)});
        bytes += n;
        at += n;
        if (bytes == kPart) OFFHOST_RETURN_IF_ERROR(flush());
      }
    }
    return flush();
  }

  Status Flush(BoundedQueue<Job>& queue, std::vector<Job>* batch, std::vector<ReadRequest>* reads) {
    if (pack_) ClosePack(batch);
    Status st = reads->empty() ? Status::OK() : ReadSource(*reads);
    reads->clear();
    for (Job& j : *batch) {
      char* buffer = j.buffer;
      const bool merge = j.kind == JobKind::kMerge;
      if (st.ok() && merge) {
        std::lock_guard<std::mutex> lock(stats_mu_);
        ++merges_open_;
      }
      if (st.ok() && queue.Push(std::move(j))) continue;
      if (buffer) pool_->Release(buffer);
      if (st.ok() && merge) MergeDone();  // the queue was closed: it never runs
    }
    batch->clear();
    batch_pool_jobs_ = 0;
    batch_patches_ = 0;
    batch_bytes_ = 0;
    return st;
  }

  void WorkerLoop(BoundedQueue<Job>& queue) {
    storage::ChunkEncoder encoder(ds_.config().zstd_level);
    while (auto job = queue.Pop()) {
      Status st = Failed() ? Status::OK() : Process(*job, encoder);
      if (job->buffer) pool_->Release(job->buffer);
      if (!st.ok()) Fail(st);
      if (job->kind == JobKind::kMerge) MergeDone();
    }
  }

  // A merge re-reads its range from the source when a base chunk turns out damaged, so the
  // source is done with only once no merge is left. False when the backup failed meanwhile.
  bool WaitForMerges() {
    std::unique_lock<std::mutex> lock(stats_mu_);
    merges_cv_.wait(lock, [&] { return merges_open_ == 0 || !failure_.ok(); });
    return failure_.ok();
  }
  void MergeDone() {
    std::lock_guard<std::mutex> lock(stats_mu_);
    --merges_open_;
    merges_cv_.notify_all();
  }

  // Fills the unchanged parts of a range from the previous snapshot. A base chunk that is
  // missing or damaged is not trusted: the whole range is read from the source.
  Status MergeBase(const Job& job) {
    for (const ManifestEntry& e : job.base) {
      if (e.kind != ManifestEntryKind::kChunk) continue;  // zeroes already
      bool damaged = false;
      auto decoded = base_chunks_->Get(e.chunk, &damaged);
      Status st = decoded.ok() ? Status::OK() : decoded.status();
      if (st.ok() && (*decoded)->size() < uint64_t{e.chunk_offset} + e.length) {
        st = Status::Corruption("too short");
        damaged = true;
      }
      if (!st.ok()) {
        if (damaged) {
          ds_.chunks().Quarantine(e.chunk).status().IgnoreError();
          claimer_->MarkMissing(e.chunk);
          std::lock_guard<std::mutex> lock(order_mu_);
          moved_aside_.insert(e.chunk);
        }
        return ReadWholeRange(job);
      }
      const std::string& bytes = **decoded;
      uint64_t pos = e.offset - job.offset;  // copy the parts of e outside the fresh ranges
      const uint64_t e_end = pos + e.length;
      auto copy = [&](uint64_t from, uint64_t to) {
        from = std::max(from, pos);
        to = std::min(to, e_end);
        if (from >= to) return;
        std::memcpy(job.buffer + from, bytes.data() + e.chunk_offset + (from - pos), to - from);
      };
      uint64_t clean = 0;
      for (const Extent& f : job.fresh) {
        copy(clean, f.offset);
        clean = f.offset + f.length;
      }
      copy(clean, job.length);
    }
    return Status::OK();
  }

  Status ReadWholeRange(const Job& job) {
    std::vector<ReadRequest> reads;
    std::memset(job.buffer, 0, job.length);
    for (const Extent& d : job.data) {
      reads.push_back({d.offset, {job.buffer + (d.offset - job.offset), d.length}});
      CountRead(d.length);
    }
    return ReadSource(reads);
  }

  Status Process(const Job& job, storage::ChunkEncoder& encoder) {
    if (job.kind == JobKind::kPack) return ProcessPack(job, encoder);
    if (job.kind == JobKind::kMerge) OFFHOST_RETURN_IF_ERROR(MergeBase(job));
    OFFHOST_ASSIGN_OR_RETURN(ManifestEntry e,
                             StoreRange(job.offset, {job.buffer, job.length}, encoder));
    return Complete(job.seq, {e});
  }

  // Stores the changed runs of the pack's patch jobs as one chunk (all-zero runs as zero
  // entries, moved out of the way) and completes each job with its kept slices and its runs as
  // slices of the pack.
  Status ProcessPack(const Job& pack, storage::ChunkEncoder& encoder) {
    size_t used = 0;  // the pack's bytes so far, at the start of its buffer
    std::vector<std::vector<ManifestEntry>> out(pack.members.size());
    std::vector<std::pair<size_t, size_t>> runs;  // (member, entry) of each run in the pack
    for (size_t m = 0; m < pack.members.size(); ++m) {
      const Job& job = pack.members[m];
      for (const Piece& p : job.pieces) {
        if (!p.fresh) {
          CountKept(p.entry);
          out[m].push_back(p.entry);
          continue;
        }
        const char* data = pack.buffer + p.at;
        ManifestEntry e{p.entry.offset, p.entry.length, ManifestEntryKind::kZero, {}};
        if (AllZero(data, p.entry.length)) {
          std::lock_guard<std::mutex> lock(stats_mu_);
          record_.zero_bytes += p.entry.length;
        } else {
          e.kind = ManifestEntryKind::kChunk;
          e.chunk_offset = static_cast<uint32_t>(used);
          if (p.at != used) std::memmove(pack.buffer + used, data, p.entry.length);
          used += p.entry.length;
          runs.emplace_back(m, out[m].size());
        }
        out[m].push_back(e);
      }
    }
    if (used > 0) {
      OFFHOST_ASSIGN_OR_RETURN(ChunkId id, StoreChunk({pack.buffer, used}, encoder));
      for (auto [m, i] : runs) out[m][i].chunk = id;
      std::lock_guard<std::mutex> lock(stats_mu_);
      record_.chunks += runs.size();
    }
    for (size_t m = 0; m < pack.members.size(); ++m) {
      OFFHOST_RETURN_IF_ERROR(Complete(pack.members[m].seq, std::move(out[m])));
    }
    return Status::OK();
  }

  // Stores the bytes of [offset, offset+data.size()) as one chunk, or says they are zeroes.
  Result<ManifestEntry> StoreRange(uint64_t offset, std::span<char> data,
                                   storage::ChunkEncoder& encoder) {
    if (AllZero(data.data(), data.size())) {
      std::lock_guard<std::mutex> lock(stats_mu_);
      record_.zero_bytes += data.size();
      return ManifestEntry{offset, data.size(), ManifestEntryKind::kZero, {}};
    }
    OFFHOST_ASSIGN_OR_RETURN(ChunkId id, StoreChunk(data, encoder));
    std::lock_guard<std::mutex> lock(stats_mu_);
    ++record_.chunks;
    return ManifestEntry{offset, data.size(), ManifestEntryKind::kChunk, id};
  }

  // Hashes, dedupes, compresses and stores one chunk; counts it when it is new. `data` starts
  // a pool buffer (header room in front, see BufferPool).
  Result<ChunkId> StoreChunk(std::span<char> data, storage::ChunkEncoder& encoder) {
    ChunkId id = ChunkId::Of(data);
    OFFHOST_ASSIGN_OR_RETURN(bool present, ds_.chunks().Contains(id));
    if (present) return id;
    OFFHOST_ASSIGN_OR_RETURN(std::span<const char> encoded, encoder.EncodeInPlace(id, data));
    OFFHOST_ASSIGN_OR_RETURN(bool wrote, ds_.chunks().Put(id, encoded));
    if (wrote) {
      std::lock_guard<std::mutex> lock(stats_mu_);
      ++record_.new_chunks;
      record_.new_bytes += encoded.size();
      if (options_.counters) options_.counters->new_bytes += encoded.size();
    }
    return id;
  }

  // Puts a range's manifest entries back into disk order.
  Status Complete(uint64_t seq, std::vector<ManifestEntry> entries) {
    std::lock_guard<std::mutex> lock(order_mu_);
    pending_.emplace(seq, std::move(entries));
    while (!pending_.empty() && pending_.begin()->first == next_seq_) {
      for (const ManifestEntry& next : pending_.begin()->second) {
        if (previous_ && next.kind == ManifestEntryKind::kChunk) used_.insert(next.chunk);
        OFFHOST_RETURN_IF_ERROR(manifest_.Add(next));
        if (options_.counters) options_.counters->done_bytes += next.length;
      }
      pending_.erase(pending_.begin());
      ++next_seq_;
    }
    return Status::OK();
  }
  // A base chunk found damaged by a merge is moved aside, but ranges planned before that may
  // still keep slices of it: such a snapshot must not be committed. The next backup finds
  // the chunk gone and reads those ranges from the source.
  Status CheckNothingUsesMovedAside() {
    std::lock_guard<std::mutex> lock(order_mu_);
    for (const ChunkId& id : moved_aside_) {
      if (!used_.count(id)) continue;
      return Status::Corruption("chunk " + id.ShortHex() +
                                " of the previous snapshot was found damaged and moved aside "
                                "while ranges that keep using it were already planned; nothing "
                                "was committed: run the backup again (it reads those ranges "
                                "from the source)");
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
    merges_cv_.notify_all();
  }

  storage::Datastore& ds_;
  BlockDevice& dev_;
  storage::DiskManifestWriter& manifest_;
  const BackupOptions& options_;
  DecodedChunkCache* base_chunks_ = nullptr;
  int threads_;
  uint32_t chunk_size_;
  size_t batch_chunks_;
  static constexpr size_t kMaxBatchJobs = 1024;
  // The full read-ahead (and buffer pool) only after this much: memory a process touches for
  // the first time costs a page fault and zeroing per page, and where the proxy is a VM whose
  // free memory was handed back to the host, ~2 ms per MiB on the benchmark machine. For an
  // incremental of 40 MiB the whole pool (tens of MiB) cost more than its reading.
  static constexpr uint64_t kRampBytes = 64u << 20;
  size_t batch_pool_jobs_ = 0;  // jobs of the current batch holding a pool buffer
  size_t batch_patches_ = 0;    // patch jobs of the current batch, inside its packs
  uint64_t batch_bytes_ = 0;    // bytes the current batch reads into its buffers
  BufferPool* pool_ = nullptr;

  ExtentWindow allocation_;
  ExtentWindow dirty_;
  std::unique_ptr<PreviousManifest> previous_;
  std::unique_ptr<ChunkClaimer> claimer_;  // with previous_
  std::optional<Job> pack_;                // being filled by the current batch's patches
  uint64_t seq_ = 0;

  std::mutex stats_mu_;
  storage::DiskRecord record_;
  Status failure_;
  size_t merges_open_ = 0;  // merge jobs planned and not yet processed
  std::condition_variable merges_cv_;

  std::mutex order_mu_;
  std::map<uint64_t, std::vector<ManifestEntry>> pending_;
  // Incrementals: chunks this backup's manifest names, and base chunks it moved aside.
  std::unordered_set<ChunkId, storage::ChunkIdHash> used_, moved_aside_;
  uint64_t next_seq_ = 0;
};

}  // namespace

void WarmBackupBuffers(const storage::Datastore& ds, const BackupOptions& options) {
  const PoolShape shape = PoolShape::Of(ds, options);
  char* memory = nullptr;
  try {
    memory = KeptPoolMemory::Take(shape.bytes());
  } catch (const std::bad_alloc&) {
    return;  // the backup asks again, and says so if it fails
  }
  const size_t warm = std::min(shape.count, shape.first_limit) * shape.stride;
#ifdef MADV_POPULATE_WRITE
  if (::madvise(memory, warm, MADV_POPULATE_WRITE) != 0)
#endif
  {
    for (size_t at = 0; at < warm; at += 4096) *static_cast<volatile char*>(memory + at) = 0;
  }
  KeptPoolMemory::Give(memory, shape.bytes());
}

Result<storage::DiskRecord> BackupOneDisk(storage::Datastore& ds, BlockDevice& device,
                                          storage::DiskManifestWriter& manifest,
                                          const BackupOptions& options,
                                          std::optional<PreviousDisk> previous,
                                          const std::function<void()>& reads_done) {
  DiskBackup backup(ds, device, manifest, options, std::move(previous));
  return backup.Run(reads_done);
}

}  // namespace offhost::proxy
