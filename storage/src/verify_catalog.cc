// Verify's walk of the file catalogs: every tree every snapshot's catalog reaches must be in
// the index and decode (docs/catalog-format.md).
#include "verify_catalog.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

namespace offhost::storage {
namespace {

using Damage = std::vector<std::pair<TreeId, std::string>>;  // tree, what is wrong with it

class CatalogChecker {
 public:
  explicit CatalogChecker(CatalogReader& reader) : reader_(reader) {}

  // The distinct damaged trees at or below `id`, each tree read once across all snapshots.
  const Damage& Check(const TreeId& id, int depth = 0) {
    auto known = below_.find(id);
    if (known != below_.end()) return known->second;  // or in progress: a loop in a bad index
    below_.emplace(id, Damage{});
    Damage damage;
    auto tree = reader_.Tree(id);
    if (!tree.ok()) {
      damage.emplace_back(id, tree.status().message());
    } else if (depth > kMaxDepth) {
      damage.emplace_back(id, "folders nested deeper than any catalog offhost writes");
    } else {
      for (const CatalogEntry& e : **tree) {
        if (!e.tree) continue;
        const Damage& child = Check(*e.tree, depth + 1);  // map references survive rehashing
        for (const auto& d : child) {
          bool seen = std::any_of(damage.begin(), damage.end(),
                                  [&](const auto& have) { return have.first == d.first; });
          if (!seen) damage.push_back(d);
        }
      }
    }
    return below_[id] = std::move(damage);
  }

  uint64_t checked() const { return below_.size(); }

 private:
  // The catalog stops at 200 levels (proxy/src/catalog_index.cc); a little slack for volumes.
  static constexpr int kMaxDepth = 256;
  CatalogReader& reader_;
  std::unordered_map<TreeId, Damage, ChunkIdHash> below_;
};

}  // namespace

Status CheckCatalogs(Datastore& ds, const std::vector<SnapshotRecord>& snapshots,
                     VerifyReport* report) {
  OFFHOST_ASSIGN_OR_RETURN(auto reader, ds.OpenCatalog());
  CatalogChecker checker(*reader);
  for (const SnapshotRecord& snap : snapshots) {
    auto record = reader->Record(snap.vm, snap.id);
    if (!record.ok()) {
      report->damaged_catalogs.push_back({snap.vm, snap.id, "", record.status().message()});
      continue;
    }
    if (!record->has_value()) continue;  // taken without a catalog, or pruned meanwhile
    for (const CatalogVolume& volume : (*record)->volumes) {
      if (!volume.root) continue;
      for (const auto& [tree, reason] : checker.Check(*volume.root)) {
        report->damaged_catalogs.push_back(
            {snap.vm, snap.id, tree.Hex(), "volume " + volume.name + ": " + reason});
      }
    }
  }
  report->catalog_trees_checked = checker.checked();
  return Status::OK();
}

}  // namespace offhost::storage
