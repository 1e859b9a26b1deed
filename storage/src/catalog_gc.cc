// Unused catalog trees: mark from every catalog record, delete the rest under the index's
// write lock when no backup runs (docs/gc.md, "Catalog trees").
#include "catalog_gc.h"

#include <rocksdb/write_batch.h>

#include "catalog_store.h"
#include "offhost/storage/catalog.h"

namespace offhost::storage {
namespace {

constexpr std::string_view kRecordPrefix = "f/";
constexpr std::string_view kTreePrefix = "t/";

// "f/<vm>/<snapshot>" → "vm@snapshot", as the other commands name a snapshot.
std::string SnapshotOfRecord(const std::string& key) {
  std::string where = key.substr(kRecordPrefix.size());
  auto slash = where.find('/');
  if (slash != std::string::npos) where[slash] = '@';
  return where;
}

bool IsDamage(const Status& s) {
  return s.code() == StatusCode::kCorruption || s.code() == StatusCode::kNotFound;
}

}  // namespace

Result<bool> CatalogTreeCollector::HasRunningBackups(Index& index) {
  OFFHOST_ASSIGN_OR_RETURN(auto running, ListRunningBackups(index, datastore_dir_));
  return !running.empty();
}

Status CatalogTreeCollector::Reach(Index& index, const TreeId& root, const std::string& where) {
  std::vector<TreeId> todo{root};
  while (!todo.empty()) {
    TreeId id = todo.back();
    todo.pop_back();
    if (!reachable_.insert(id).second) continue;
    OFFHOST_ASSIGN_OR_RETURN(auto value, index.Get(TreeKey(id)));
    if (!value) {
      return Status::NotFound("catalog tree " + id.Hex() + " of " + where +
                              " is missing from the index");
    }
    auto entries = DecodeTree(*value);
    if (!entries.ok())
      return entries.status().WithContext("catalog tree " + id.Hex() + " of " + where);
    for (const CatalogEntry& e : *entries) {
      if (e.tree) todo.push_back(*e.tree);
    }
    if (++visited_ % 1024 == 0) {
      if (options_.progress) options_.progress("trees", visited_, 0);
      if (options_.stop && options_.stop()) return Status::Cancelled("garbage collection stopped");
    }
  }
  return Status::OK();
}

Status CatalogTreeCollector::ReachRecord(Index& index, const std::string& key,
                                         const std::string& value) {
  const std::string where = SnapshotOfRecord(key);
  OFFHOST_ASSIGN_OR_RETURN(CatalogRecord record, CatalogFromJson(value, where));
  for (const CatalogVolume& v : record.volumes) {
    if (v.root) OFFHOST_RETURN_IF_ERROR(Reach(index, *v.root, where));
  }
  records_[key] = value;
  return Status::OK();
}

Status CatalogTreeCollector::Mark(Index& view) {
  std::unique_ptr<rocksdb::Iterator> it(view.db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(kRecordPrefix); it->Valid() && it->key().starts_with(kRecordPrefix); it->Next()) {
    Status st = ReachRecord(view, it->key().ToString(), it->value().ToString());
    if (IsDamage(st)) {
      stats_.not_collected = st.message() + "; no catalog tree was removed; run offhost verify";
      break;
    }
    OFFHOST_RETURN_IF_ERROR(st);
  }
  OFFHOST_RETURN_IF_ERROR(FromRocks(it->status(), "read catalog records"));
  for (it->Seek(kTreePrefix); it->Valid() && it->key().starts_with(kTreePrefix); it->Next()) {
    ++stats_.trees;
    auto id = TreeIdOfKey(it->key().ToString());
    if (!id || reachable_.count(*id)) continue;
    unused_.emplace_back(*id, it->value().size());
  }
  OFFHOST_RETURN_IF_ERROR(FromRocks(it->status(), "list catalog trees"));
  if (!stats_.not_collected.empty()) {
    unused_.clear();  // not known: the trees below the damage may be in use
    return Status::OK();
  }
  stats_.referenced = stats_.trees - unused_.size();
  if (options_.dry_run) {
    // What a GC would do now: keep them all while backups run (see Sweep).
    OFFHOST_ASSIGN_OR_RETURN(running_, HasRunningBackups(view));
  }
  return Status::OK();
}

Status CatalogTreeCollector::Sweep() {
  if (!stats_.not_collected.empty() || unused_.empty()) return Status::OK();
  if (options_.dry_run) {
    for (const auto& [id, bytes] : unused_) {
      ++(running_ ? stats_.kept_unused : stats_.removed);
      (running_ ? stats_.kept_unused_bytes : stats_.removed_bytes) += bytes;
    }
    return Status::OK();
  }
  OFFHOST_ASSIGN_OR_RETURN(auto index, Index::OpenWritable(datastore_dir_ + "/index"));
  OFFHOST_ASSIGN_OR_RETURN(bool running, HasRunningBackups(*index));
  if (running) {
    for (const auto& [id, bytes] : unused_) {
      ++stats_.kept_unused;
      stats_.kept_unused_bytes += bytes;
    }
    return Status::OK();
  }
  // Snapshots committed since the mark may refer to trees that were unused then.
  std::unique_ptr<rocksdb::Iterator> it(index->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(kRecordPrefix); it->Valid() && it->key().starts_with(kRecordPrefix); it->Next()) {
    std::string key = it->key().ToString(), value = it->value().ToString();
    // A record marked before, unless pruned and committed again under the same id since.
    auto marked = records_.find(key);
    if (marked != records_.end() && marked->second == value) continue;
    Status st = ReachRecord(*index, key, value);
    if (IsDamage(st)) {
      stats_.not_collected = st.message() + "; no catalog tree was removed; run offhost verify";
      return Status::OK();
    }
    OFFHOST_RETURN_IF_ERROR(st);
  }
  OFFHOST_RETURN_IF_ERROR(FromRocks(it->status(), "read catalog records"));
  it.reset();
  rocksdb::WriteBatch batch;
  for (const auto& [id, bytes] : unused_) {
    if (reachable_.count(id)) continue;
    batch.Delete(TreeKey(id));
    ++stats_.removed;
    stats_.removed_bytes += bytes;
  }
  if (batch.Count() == 0) return Status::OK();
  OFFHOST_RETURN_IF_ERROR(index->WriteSynced(&batch));
  // The deletes are tombstones until a compaction drops them with the trees' bytes; the
  // index is open for writing only briefly at a time, so that is done here. The trees are
  // gone either way, so a failed compaction only leaves their bytes for a later one.
  const std::string begin(kTreePrefix), end = "t0";  // '0' follows '/'
  rocksdb::Slice b(begin), e(end);
  index->db()->CompactRange(rocksdb::CompactRangeOptions(), &b, &e).PermitUncheckedError();
  return Status::OK();
}

}  // namespace offhost::storage
