// Catalog questions. Trees are content-addressed, so a search visits each distinct directory
// once however many snapshots hold it: matches found under a tree are remembered by its id.
#include <fnmatch.h>

#include <algorithm>
#include <list>
#include <map>
#include <unordered_map>

#include "offhost/proxy/catalog.h"

namespace offhost::proxy {
namespace {

using storage::CatalogEntry;
using storage::CatalogFileType;
using storage::CatalogReader;
using storage::CatalogRecord;
using storage::TreeId;

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    if (next > pos) parts.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return parts;
}

CatalogEntry VolumeEntry(const storage::CatalogVolume& v) {
  CatalogEntry e;
  e.name = v.name;
  e.type = CatalogFileType::kDirectory;
  e.mode = 0755;
  e.size = v.length;
  e.tree = v.root;
  return e;
}

// Same file version: what `find` and history compare between snapshots.
bool SameVersion(const CatalogEntry& a, const CatalogEntry& b) {
  return a.type == b.type && a.size == b.size && a.mtime == b.mtime && a.ctime == b.ctime &&
         a.link_target == b.link_target && a.mode == b.mode;
}

Status NotFound(const std::string& path, const std::string& why) {
  return Status::NotFound(path + ": " + why + "; list the folder above it with 'offhost ls'");
}

}  // namespace

Result<CatalogEntry> CatalogLookup(CatalogReader& reader, const CatalogRecord& record,
                                   const std::string& path) {
  auto parts = SplitPath(path);
  CatalogEntry cur;
  cur.name.assign(1, '/');  // (assigning "/" trips a false -Wrestrict in GCC 12 with ASan)
  cur.type = CatalogFileType::kDirectory;
  cur.mode = 0755;
  if (parts.empty()) return cur;
  auto vol = std::find_if(record.volumes.begin(), record.volumes.end(),
                          [&](const storage::CatalogVolume& v) { return v.name == parts[0]; });
  if (vol == record.volumes.end()) return NotFound(path, "no volume " + parts[0] + " in this backup");
  if (!vol->not_indexed.empty()) {
    return Status::NotFound(path + ": volume " + vol->name + " is not indexed: " + vol->not_indexed);
  }
  cur = VolumeEntry(*vol);
  for (size_t i = 1; i < parts.size(); ++i) {
    if (cur.type != CatalogFileType::kDirectory) return NotFound(path, "'" + cur.name + "' is not a folder");
    if (!cur.tree) return NotFound(path, "folder '" + cur.name + "' could not be read at backup time");
    OFFHOST_ASSIGN_OR_RETURN(auto tree, reader.Tree(*cur.tree));
    auto it = std::lower_bound(tree->begin(), tree->end(), parts[i],
                               [](const CatalogEntry& e, const std::string& n) { return e.name < n; });
    if (it == tree->end() || it->name != parts[i]) return NotFound(path, "no such file or folder");
    cur = *it;
  }
  return cur;
}

Result<std::vector<CatalogEntry>> CatalogList(CatalogReader& reader, const CatalogRecord& record,
                                              const std::string& path) {
  if (SplitPath(path).empty()) {
    std::vector<CatalogEntry> out;
    for (const auto& v : record.volumes) out.push_back(VolumeEntry(v));
    return out;
  }
  OFFHOST_ASSIGN_OR_RETURN(CatalogEntry dir, CatalogLookup(reader, record, path));
  if (dir.type != CatalogFileType::kDirectory) return std::vector<CatalogEntry>{dir};
  if (!dir.tree) return NotFound(path, "this folder could not be read at backup time");
  OFFHOST_ASSIGN_OR_RETURN(auto tree, reader.Tree(*dir.tree));
  return *tree;
}

namespace {

// Matches of one query under each distinct tree, as paths relative to the tree.
class Matcher {
 public:
  Matcher(CatalogReader& reader, const FindQuery& q)
      : reader_(reader), q_(q), on_path_(q.pattern.find('/') != std::string::npos) {}

  struct Match {
    std::string path;
    const CatalogEntry* entry;
  };

  Result<const std::vector<Match>*> Under(const TreeId& id, const std::string& prefix) {
    // Path patterns depend on where the tree sits, so only name patterns share results.
    if (!on_path_) {
      auto it = memo_.find(id);
      if (it != memo_.end()) return &it->second;
    }
    OFFHOST_ASSIGN_OR_RETURN(auto tree, reader_.Tree(id));
    trees_.push_back(tree);  // keeps the entries the matches point to alive
    std::vector<Match> out;
    for (const CatalogEntry& e : *tree) {
      std::string rel = "/" + e.name;
      if (Matches(e.name, prefix + rel)) out.push_back({rel, &e});
      if (e.type == CatalogFileType::kDirectory && e.tree) {
        OFFHOST_ASSIGN_OR_RETURN(const std::vector<Match>* sub, Under(*e.tree, prefix + rel));
        for (const Match& m : *sub) out.push_back({rel + m.path, m.entry});
      }
    }
    if (on_path_) {
      scratch_.push_back(std::move(out));
      return &scratch_.back();
    }
    return &(memo_[id] = std::move(out));
  }

 private:
  bool Matches(const std::string& name, const std::string& path) const {
    int flags = q_.ignore_case ? FNM_CASEFOLD : 0;
    return ::fnmatch(q_.pattern.c_str(), on_path_ ? path.c_str() : name.c_str(), flags) == 0;
  }

  CatalogReader& reader_;
  const FindQuery& q_;
  bool on_path_;
  std::unordered_map<TreeId, std::vector<Match>, storage::ChunkIdHash> memo_;
  std::list<std::vector<Match>> scratch_;
  std::vector<std::shared_ptr<const std::vector<CatalogEntry>>> trees_;
};

}  // namespace

Result<FindResult> FindFiles(storage::Datastore& ds, const FindQuery& query) {
  if (query.pattern.empty()) return Status::InvalidArgument("find needs a name or glob pattern");
  OFFHOST_ASSIGN_OR_RETURN(auto snapshots, ds.ListSnapshots(query.vm));
  if (!query.vm.empty() && snapshots.empty()) {
    return Status::NotFound("no backups of VM '" + query.vm + "' in " + ds.dir() +
                            "; 'offhost snapshots --datastore " + ds.dir() + "' lists them");
  }
  std::sort(snapshots.begin(), snapshots.end(), [](const auto& a, const auto& b) {
    return a.started != b.started ? a.started > b.started : a.id > b.id;  // newest first
  });
  OFFHOST_ASSIGN_OR_RETURN(auto reader, ds.OpenCatalog());
  Matcher matcher(*reader, query);
  FindResult result;
  std::map<std::pair<std::string, std::string>, size_t> latest;  // (vm, path) → newest hit
  for (const auto& snap : snapshots) {
    if (snap.started < query.since) continue;
    OFFHOST_ASSIGN_OR_RETURN(auto record, reader->Record(snap.vm, snap.id));
    if (!record) {
      ++result.snapshots_without_catalog;
      continue;
    }
    ++result.snapshots_searched;
    for (const auto& vol : record->volumes) {
      if (!vol.root) continue;
      OFFHOST_ASSIGN_OR_RETURN(auto matches, matcher.Under(*vol.root, "/" + vol.name));
      for (const auto& m : *matches) {
        std::string path = "/" + vol.name + m.path;
        auto key = std::make_pair(snap.vm, path);
        auto it = latest.find(key);
        // Snapshots come newest first: an older snapshot with the same version extends it.
        if (it != latest.end() && SameVersion(result.hits[it->second].entry, *m.entry)) {
          FindHit& hit = result.hits[it->second];
          hit.oldest = snap.id;
          ++hit.snapshots;
          continue;
        }
        if (query.limit && result.hits.size() >= query.limit) {
          result.truncated = true;
          continue;
        }
        latest[key] = result.hits.size();
        result.hits.push_back({snap.vm, path, *m.entry, snap.id, snap.id, 1});
      }
    }
  }
  return result;
}

Result<std::vector<PathVersion>> PathHistory(storage::Datastore& ds, const std::string& vm,
                                             const std::string& path) {
  OFFHOST_ASSIGN_OR_RETURN(auto snapshots, ds.ListSnapshots(vm));
  if (snapshots.empty()) {
    return Status::NotFound("no backups of VM '" + vm + "' in " + ds.dir());
  }
  OFFHOST_ASSIGN_OR_RETURN(auto reader, ds.OpenCatalog());
  std::vector<PathVersion> out;
  for (const auto& snap : snapshots) {  // oldest first, to mark changes; reversed below
    PathVersion v;
    v.snapshot = snap.id;
    OFFHOST_ASSIGN_OR_RETURN(auto record, reader->Record(snap.vm, snap.id));
    if (!record) {
      v.no_catalog = true;
    } else {
      auto entry = CatalogLookup(*reader, *record, path);
      if (entry.ok()) v.entry = std::move(*entry);
      else if (entry.status().code() != StatusCode::kNotFound) return entry.status();
    }
    const PathVersion* older = out.empty() ? nullptr : &out.back();
    if (older && !older->no_catalog && !v.no_catalog) {
      v.changed = v.entry.has_value() != older->entry.has_value() ||
                  (v.entry && !SameVersion(*v.entry, *older->entry));
    } else {
      v.changed = !older && v.entry.has_value();
    }
    out.push_back(std::move(v));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace offhost::proxy
