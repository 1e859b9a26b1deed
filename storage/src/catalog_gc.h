// The catalog-tree part of garbage collection (docs/gc.md, "Catalog trees"): trees live in the
// index (`t/` keys), shared by every snapshot whose catalog reaches them, and a prune removes
// only a snapshot's catalog record. Private to storage/.
#pragma once

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "index.h"
#include "offhost/storage/gc.h"

namespace offhost::storage {

class CatalogTreeCollector {
 public:
  CatalogTreeCollector(const GcOptions& options, std::string datastore_dir)
      : options_(options), datastore_dir_(std::move(datastore_dir)) {}

  // Marks every tree a catalog record of `view` reaches and notes the others. A reachable tree
  // that is missing or damaged makes the collection of trees stop here (stats().not_collected says
  // why), since the trees below it cannot be known; other errors are returned.
  Status Mark(Index& view);
  // Under the index's write lock: marks the trees of catalogs committed since Mark, then deletes
  // the trees nothing reaches, unless a backup is running (it may have found one of them in the
  // index and will refer to it when it commits). A dry run only counts, as the kept ones
  // when backups were running at the mark.
  Status Sweep();

  const TreeSweepStats& stats() const { return stats_; }

 private:
  // Adds `root` and every tree below it to the reachable set; `where` names the snapshot.
  Status Reach(Index& index, const TreeId& root, const std::string& where);
  Status ReachRecord(Index& index, const std::string& key, const std::string& value);
  Result<bool> HasRunningBackups(Index& index);

  const GcOptions& options_;
  const std::string datastore_dir_;
  std::unordered_set<TreeId, ChunkIdHash> reachable_;
  std::unordered_map<std::string, std::string> records_;  // `f/` records marked: key, value
  std::vector<std::pair<TreeId, uint64_t>> unused_;  // with their sizes, as of Mark
  uint64_t visited_ = 0;
  bool running_ = false;  // dry run: backups were running at the mark
  TreeSweepStats stats_;
};

}  // namespace offhost::storage
