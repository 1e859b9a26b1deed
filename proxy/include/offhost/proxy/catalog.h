// The file catalog: built while a backup runs (every file of every readable guest volume, with
// its data extents), then asked three questions: list a directory of a snapshot, find files
// by name or glob across VMs and snapshots, and the history of one path.
// Format: docs/catalog-format.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "offhost/mount/guest_files.h"
#include "offhost/storage/datastore.h"

namespace offhost::proxy {

// The catalog walks folders this deep at most: a damaged or hostile file system may loop a
// folder back onto an ancestor. Deeper folders count as unreadable (their entries stay out).
inline constexpr int kCatalogMaxDepth = 200;

struct IndexStats {
  uint64_t files = 0, directories = 0, skipped_names = 0;
  uint64_t unreadable_dirs = 0;  // folders whose entries are not cataloged (damaged, too deep)
  std::vector<std::string> not_indexed;  // "VOLUME: reason"
};

// Walks every volume of `disks` and stages the catalog into `writer`. Never fails the backup
// for what it cannot read: a volume it cannot read is recorded as "not indexed: reason".
Result<IndexStats> IndexGuestFiles(const std::vector<mount::GuestDisk>& disks,
                                   storage::SnapshotWriter& writer);

// Catalog paths are those of `offhost ls`: "/" lists the volumes, "/vda1/etc/fstab".
Result<storage::CatalogEntry> CatalogLookup(storage::CatalogReader& reader,
                                            const storage::CatalogRecord& record,
                                            const std::string& path);
// A directory's entries (the volumes for "/").
Result<std::vector<storage::CatalogEntry>> CatalogList(storage::CatalogReader& reader,
                                                       const storage::CatalogRecord& record,
                                                       const std::string& path);

struct FindQuery {
  std::string pattern;  // glob (fnmatch) on the file name, or on the path if it has a '/'
  std::string vm;       // empty: every VM
  int64_t since = 0;    // only snapshots started at or after this time (unix seconds)
  bool ignore_case = false;
  size_t limit = 1000;  // 0: no limit
};

// One version of one file: the snapshots holding it unchanged, newest first.
struct FindHit {
  std::string vm, path;
  storage::CatalogEntry entry;
  std::string newest, oldest;  // snapshot ids
  size_t snapshots = 0;
};

struct FindResult {
  std::vector<FindHit> hits;  // newest version first
  bool truncated = false;     // `limit` reached
  size_t snapshots_searched = 0, snapshots_without_catalog = 0;
};

Result<FindResult> FindFiles(storage::Datastore& ds, const FindQuery& query);

struct PathVersion {
  std::string snapshot;
  std::optional<storage::CatalogEntry> entry;  // absent: not in that snapshot
  bool changed = false;  // differs from the next older snapshot (size, mtime, type or link)
  bool no_catalog = false;
};

// `path` in every snapshot of `vm`, newest first.
Result<std::vector<PathVersion>> PathHistory(storage::Datastore& ds, const std::string& vm,
                                             const std::string& path);

}  // namespace offhost::proxy
