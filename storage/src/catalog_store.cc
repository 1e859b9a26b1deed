// The catalog in the datastore's index: trees staged during a backup and published with its
// snapshot (keys `t/` and `f/`, docs/catalog-format.md), and the reader.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "catalog_store.h"
#include "index.h"
#include "little_endian.h"
#include "offhost/storage/datastore.h"

namespace offhost::storage {
namespace {

using nlohmann::json;

json ToJson(const CatalogRecord& c) {
  json volumes = json::array();
  for (const CatalogVolume& v : c.volumes) {
    json j = {{"name", v.name},         {"fs_type", v.fs_type}, {"offset", v.offset},
              {"length", v.length},     {"files", v.files},     {"directories", v.directories},
              {"bytes", v.bytes},       {"unreadable", v.unreadable}};
    if (!v.not_indexed.empty()) j["not_indexed"] = v.not_indexed;
    if (v.root) j["root"] = v.root->Hex();
    volumes.push_back(std::move(j));
  }
  return {{"disks", c.disks}, {"volumes", volumes}};
}

class IndexCatalogReader final : public CatalogReader {
 public:
  explicit IndexCatalogReader(std::unique_ptr<Index> index) : index_(std::move(index)) {}

  Result<std::optional<CatalogRecord>> Record(const std::string& vm,
                                              const std::string& snapshot) override {
    OFFHOST_ASSIGN_OR_RETURN(auto value, index_->Get(CatalogKey(vm, snapshot)));
    if (!value) return std::optional<CatalogRecord>();
    OFFHOST_ASSIGN_OR_RETURN(auto record, CatalogFromJson(*value, vm + "@" + snapshot));
    return std::optional<CatalogRecord>(std::move(record));
  }

  Result<std::shared_ptr<const std::vector<CatalogEntry>>> Tree(const TreeId& id) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = cache_.find(id);
      if (it != cache_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second.second);
        return it->second.first;
      }
    }
    OFFHOST_ASSIGN_OR_RETURN(auto value, index_->Get(TreeKey(id)));
    if (!value) return Status::Corruption("catalog tree " + id.Hex() + " is missing from the index");
    auto decoded = DecodeTree(*value);
    if (!decoded.ok()) return decoded.status().WithContext("catalog tree " + id.Hex());
    auto tree = std::make_shared<const std::vector<CatalogEntry>>(std::move(*decoded));
    std::lock_guard<std::mutex> lock(mu_);
    if (!cache_.count(id)) {
      lru_.push_front(id);
      cache_[id] = {tree, lru_.begin()};
      if (cache_.size() > kCachedTrees) {
        cache_.erase(lru_.back());
        lru_.pop_back();
      }
    }
    return tree;
  }

 private:
  static constexpr size_t kCachedTrees = 4096;
  std::unique_ptr<Index> index_;
  std::mutex mu_;
  std::list<TreeId> lru_;
  std::unordered_map<TreeId,
                     std::pair<std::shared_ptr<const std::vector<CatalogEntry>>,
                               std::list<TreeId>::iterator>,
                     ChunkIdHash>
      cache_;
};

Status WriteAllTo(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write catalog staging file " + path, errno);
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

}  // namespace

Result<CatalogRecord> CatalogFromJson(const std::string& text, const std::string& where) {
  try {
    json j = json::parse(text);
    CatalogRecord c;
    c.disks = j.at("disks").get<std::vector<std::string>>();
    for (const json& v : j.at("volumes")) {
      CatalogVolume vol;
      vol.name = v.at("name").get<std::string>();
      vol.fs_type = v.value("fs_type", "");
      vol.not_indexed = v.value("not_indexed", "");
      vol.offset = v.value("offset", uint64_t{0});
      vol.length = v.value("length", uint64_t{0});
      vol.files = v.value("files", uint64_t{0});
      vol.directories = v.value("directories", uint64_t{0});
      vol.bytes = v.value("bytes", uint64_t{0});
      vol.unreadable = v.value("unreadable", uint64_t{0});
      if (v.contains("root")) {
        auto id = ChunkId::FromHex(v.at("root").get<std::string>());
        if (!id) return Status::Corruption("catalog " + where + " has a bad root tree id");
        vol.root = *id;
      }
      c.volumes.push_back(std::move(vol));
    }
    return c;
  } catch (const json::exception& e) {
    return Status::Corruption("catalog " + where + " is not valid: " + e.what());
  }
}

Result<std::unique_ptr<CatalogReader>> Datastore::OpenCatalog() {
  OFFHOST_ASSIGN_OR_RETURN(auto index, Index::OpenReadOnly(dir_ + "/index"));
  return std::unique_ptr<CatalogReader>(new IndexCatalogReader(std::move(index)));
}

std::string CatalogStagingPath(const std::string& staging_dir) {
  return staging_dir + "/catalog.trees";
}

Result<TreeId> SnapshotWriter::AddCatalogTree(std::vector<CatalogEntry> entries) {
  std::string encoded = EncodeTree(std::move(entries));
  TreeId id = ChunkId::Of(encoded);
  if (staged_trees_.count(id)) return id;
  std::string path = CatalogStagingPath(staging_dir_);
  if (trees_fd_ < 0) {
    trees_fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (trees_fd_ < 0) return Status::FromErrno("create catalog staging file " + path, errno);
    // Trees an earlier snapshot stored are skipped; a tree committed meanwhile by another
    // backup is written again with the same bytes, which is harmless.
    auto index = Index::OpenReadOnly(ds_->dir() + "/index");
    if (index.ok()) stored_trees_ = std::move(*index);
  }
  staged_trees_.insert(id);
  if (stored_trees_) {
    OFFHOST_ASSIGN_OR_RETURN(auto existing, stored_trees_->Get(TreeKey(id)));
    if (existing) return id;
  }
  std::string rec(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
  AppendLe<uint32_t>(&rec, static_cast<uint32_t>(encoded.size()));
  rec += encoded;
  OFFHOST_RETURN_IF_ERROR(WriteAllTo(trees_fd_, rec, path));
  new_catalog_bytes_ += encoded.size();
  return id;
}

Status AddStagedCatalog(const std::string& staging_dir, const std::string& staged,
                        const std::optional<CatalogRecord>& catalog, const std::string& vm,
                        const std::string& id, rocksdb::WriteBatch* batch) {
  size_t pos = 0;
  while (pos < staged.size()) {
    if (staged.size() - pos < 36) return Status::Corruption("truncated " + CatalogStagingPath(staging_dir));
    TreeId tree;
    std::memcpy(tree.bytes.data(), staged.data() + pos, 32);
    uint32_t len = GetLe<uint32_t>(staged.data() + pos + 32);
    pos += 36;
    if (staged.size() - pos < len) return Status::Corruption("truncated " + CatalogStagingPath(staging_dir));
    batch->Put(TreeKey(tree), rocksdb::Slice(staged.data() + pos, len));
    pos += len;
  }
  if (catalog) batch->Put(CatalogKey(vm, id), ToJson(*catalog).dump());
  return Status::OK();
}

}  // namespace offhost::storage
