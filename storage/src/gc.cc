// Garbage collection (docs/gc.md): mark every chunk committed manifests use, then sweep the
// chunk files nobody uses that were last claimed before the cut-off; then the same for the
// catalog trees in the index (catalog_gc.h).
#include "offhost/storage/gc.h"

#include <chrono>
#include <ctime>
#include <thread>

#include "catalog_gc.h"
#include "index.h"
#include "offhost/storage/chunk_id_set.h"

namespace offhost::storage {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int64_t NowNs() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// What GC knows before it marks: the cut-off and the index state it was read from.
struct Start {
  int64_t cutoff_ns = 0;
  uint64_t running = 0;
  rocksdb::SequenceNumber sequence = 0;
};

Start CutoffFrom(const std::vector<RunningBackup>& running, int64_t now_ns, int64_t min_age) {
  int64_t earliest = now_ns;
  for (const auto& b : running) earliest = std::min(earliest, b.started * 1000000000);
  return Start{earliest - min_age * 1000000000, running.size(), 0};
}

// Under the index's write lock, briefly: markers of dead backups go (their staging too), and
// the live ones give the cut-off. A backup not seen here writes its marker later, so all its
// claims are later than now.
Result<Start> ReadStart(Datastore& ds, const GcOptions& o, int64_t now_ns) {
  const std::string dir = ds.dir() + "/index";
  if (o.dry_run) {
    OFFHOST_ASSIGN_OR_RETURN(auto index, Index::OpenReadOnly(dir));
    OFFHOST_ASSIGN_OR_RETURN(auto running, ListRunningBackups(*index, ds.dir()));
    Start s = CutoffFrom(running, now_ns, o.min_age_seconds);
    s.sequence = index->db()->GetLatestSequenceNumber();
    return s;
  }
  OFFHOST_ASSIGN_OR_RETURN(auto index, Index::OpenWritable(dir));
  RemoveDeadBackups(*index, ds.dir()).status().IgnoreError();
  OFFHOST_ASSIGN_OR_RETURN(auto running, ListRunningBackups(*index, ds.dir()));
  Start s = CutoffFrom(running, now_ns, o.min_age_seconds);
  s.sequence = index->db()->GetLatestSequenceNumber();
  return s;
}

// The index as of the start, or later: a read-only open must not miss a snapshot committed
// before the markers were read (its chunks' claims may be older than the cut-off).
Result<std::unique_ptr<Index>> OpenMarkView(Datastore& ds, rocksdb::SequenceNumber at_least) {
  for (int attempt = 0;; ++attempt) {
    OFFHOST_ASSIGN_OR_RETURN(auto index, Index::OpenReadOnly(ds.dir() + "/index"));
    if (index->db()->GetLatestSequenceNumber() >= at_least) return index;
    if (attempt >= 500) {
      return Status::Unavailable("the index of " + ds.dir() +
                                 " read back older than it was written; nothing was removed, "
                                 "run gc again");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Every chunk id of every committed manifest, read straight from the `m/` keys of one view
// (pruned snapshots' keys are gone; a backup's keys appear only at its commit).
Status Mark(Index& index, const GcOptions& o, ChunkIdSet* marked, GcReport* report) {
  std::unique_ptr<rocksdb::Iterator> it(index.db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("s/"); it->Valid() && it->key().starts_with("s/"); it->Next()) ++report->snapshots;
  OFFHOST_RETURN_IF_ERROR(FromRocks(it->status(), "list snapshots"));
  uint64_t segments = 0;
  for (it->Seek("m/"); it->Valid() && it->key().starts_with("m/"); it->Next()) {
    auto entries = DecodeManifestSegment({it->value().data(), it->value().size()});
    if (!entries.ok()) {
      // Its chunks cannot be known, so none may go.
      return entries.status().WithContext("manifest segment " + it->key().ToString() +
                                          " is damaged; garbage collection stopped before "
                                          "removing anything; run offhost verify");
    }
    for (const ManifestEntry& e : *entries) {
      if (e.kind == ManifestEntryKind::kChunk) marked->Add(e.chunk);
    }
    if (++segments % 1024 == 0) {
      if (o.progress) o.progress("mark", segments, 0);
      if (o.stop && o.stop()) return Status::Cancelled("garbage collection stopped");
    }
  }
  OFFHOST_RETURN_IF_ERROR(FromRocks(it->status(), "read manifests"));
  marked->Seal();
  report->referenced_chunks = marked->size();
  report->mark_set_bytes = marked->memory_bytes();
  return Status::OK();
}

}  // namespace

Result<GcReport> CollectGarbage(Datastore& ds, const GcOptions& o) {
  if (o.min_age_seconds < 0) return Status::InvalidArgument("GC minimum age cannot be negative");
  GcReport report;
  report.dry_run = o.dry_run;
  const int64_t now_ns = NowNs();
  report.started = now_ns / 1000000000;
  auto t0 = Clock::now();
  OFFHOST_ASSIGN_OR_RETURN(Start start, ReadStart(ds, o, now_ns));
  report.cutoff = start.cutoff_ns / 1000000000;
  report.running_backups = start.running;
  ChunkIdSet marked;
  CatalogTreeCollector trees(o, ds.dir());
  {
    OFFHOST_ASSIGN_OR_RETURN(auto view, OpenMarkView(ds, start.sequence));
    OFFHOST_RETURN_IF_ERROR(Mark(*view, o, &marked, &report));
    OFFHOST_RETURN_IF_ERROR(trees.Mark(*view));
  }
  report.mark_seconds = Since(t0);
  auto t1 = Clock::now();
  SweepOptions sweep;
  sweep.cutoff_ns = start.cutoff_ns;
  sweep.dry_run = o.dry_run;
  sweep.referenced = [&](const ChunkId& id) { return marked.MayContain(id); };
  sweep.before_delete = o.before_delete;
  sweep.stop = o.stop;
  if (o.progress) sweep.progress = [&](uint64_t d, uint64_t t) { o.progress("sweep", d, t); };
  OFFHOST_ASSIGN_OR_RETURN(report.sweep, ds.chunks().Sweep(sweep));
  OFFHOST_RETURN_IF_ERROR(trees.Sweep());
  report.trees = trees.stats();
  report.sweep_seconds = Since(t1);
  return report;
}

Result<int64_t> GcCutoff(Datastore& ds, int64_t min_age_seconds) {
  GcOptions o;
  o.dry_run = true;
  o.min_age_seconds = min_age_seconds;
  OFFHOST_ASSIGN_OR_RETURN(Start s, ReadStart(ds, o, NowNs()));
  return s.cutoff_ns / 1000000000;
}

}  // namespace offhost::storage
