// Garbage collection: deletes the chunk files and catalog trees no committed snapshot uses,
// safely while backups run. Rules, locking and why they are safe: docs/gc.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "offhost/common/status.h"
#include "offhost/storage/datastore.h"

namespace offhost::storage {

struct GcOptions {
  // Count what would be removed; remove nothing.
  bool dry_run = false;
  // Seconds subtracted from the cut-off (GC start, or the start of the oldest running backup
  // if earlier): a chunk claimed less than this long before it is never collected. Covers a
  // clock stepped back and other hosts' clocks on shared storage. Default 5 minutes.
  int64_t min_age_seconds = 300;
  // Called now and then with the phase ("mark", "trees", "sweep") and (done, total) of it
  // (total 0: not known).
  std::function<void(const char* phase, uint64_t done, uint64_t total)> progress;
  // Asked now and then; true stops GC early with Cancelled (a safe point: whatever was
  // removed was unused).
  std::function<bool()> stop;
  // Test hook: called under the chunk directory's lock just before a chunk file is deleted.
  std::function<void(const ChunkId&)> before_delete;
};

// Catalog trees (docs/catalog-format.md): folders of snapshots' file catalogs, in the index.
struct TreeSweepStats {
  uint64_t trees = 0;       // in the index
  uint64_t referenced = 0;  // kept: a committed snapshot's catalog reaches them
  uint64_t removed = 0;     // unused trees deleted (dry run: would be)
  uint64_t removed_bytes = 0;
  // Unused trees kept because backups were running when GC came to delete them (one may have
  // found such a tree in the index and refer to it when it commits); the next GC removes them.
  uint64_t kept_unused = 0;
  uint64_t kept_unused_bytes = 0;
  // Why no tree was removed, when a catalog is damaged (empty otherwise).
  std::string not_collected;
};

struct GcReport {
  bool dry_run = false;
  int64_t started = 0;             // unix seconds
  int64_t cutoff = 0;              // unix seconds: chunks claimed after it are kept
  uint64_t running_backups = 0;    // backups running when GC began (they held the cut-off)
  uint64_t snapshots = 0;          // committed snapshots marked
  uint64_t referenced_chunks = 0;  // distinct chunk ids their manifests use
  uint64_t mark_set_bytes = 0;     // memory of the mark set
  double mark_seconds = 0;
  double sweep_seconds = 0;
  SweepStats sweep;  // chunks seen, kept and removed (or would be, dry run)
  TreeSweepStats trees;
};

// One run of garbage collection over `ds` (which must be writable unless dry_run).
Result<GcReport> CollectGarbage(Datastore& ds, const GcOptions& options);

// The cut-off a GC starting now would use (unix seconds), for "space GC would free": the
// earliest of now and every running backup's start, minus `min_age_seconds`.
Result<int64_t> GcCutoff(Datastore& ds, int64_t min_age_seconds);

}  // namespace offhost::storage
