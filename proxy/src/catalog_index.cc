// Catalog indexing: a depth-first walk of every guest volume through GuestFiles, building the
// trees bottom-up (a directory's tree id needs its children's). Reads only file-system
// metadata, through a block cache, so the disk is not read end to end a second time.
#include <algorithm>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>

#include "offhost/proxy/catalog.h"

namespace offhost::proxy {
namespace {

using storage::CatalogEntry;
using storage::CatalogFileType;

// File systems read metadata in small pieces; over NBD each would be a round trip. Reads are
// served from cached 256 KiB blocks instead (32 MiB in all per disk).
class BlockCache final : public BlockDevice {
 public:
  explicit BlockCache(BlockDevice& dev) : dev_(dev) {}
  uint64_t size() const override { return dev_.size(); }
  std::string description() const override { return dev_.description(); }
  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override {
    return dev_.Extents(offset, length);
  }

  Status Read(std::span<const ReadRequest> requests) override {
    for (const ReadRequest& r : requests) {
      uint64_t pos = r.offset, end = r.offset + r.buffer.size();
      while (pos < end) {
        uint64_t block = pos / kBlock;
        OFFHOST_ASSIGN_OR_RETURN(const std::string* data, Block(block));
        uint64_t within = pos - block * kBlock;
        uint64_t n = std::min<uint64_t>(end - pos, data->size() - within);
        if (n == 0) return Status::InvalidArgument("read beyond the end of " + description());
        std::memcpy(r.buffer.data() + (pos - r.offset), data->data() + within, n);
        pos += n;
      }
    }
    return Status::OK();
  }

 private:
  static constexpr uint64_t kBlock = 256 * 1024;
  static constexpr size_t kBlocks = 128;

  Result<const std::string*> Block(uint64_t block) {
    auto it = blocks_.find(block);
    if (it != blocks_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.second);
      return &it->second.first;
    }
    uint64_t start = block * kBlock;
    std::string data(std::min<uint64_t>(kBlock, dev_.size() - start), '\0');
    ReadRequest req{start, {data.data(), data.size()}};
    OFFHOST_RETURN_IF_ERROR(dev_.Read({&req, 1}));
    if (blocks_.size() >= kBlocks) {
      blocks_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(block);
    auto& slot = blocks_[block];
    slot = {std::move(data), lru_.begin()};
    return &slot.first;
  }

  BlockDevice& dev_;
  std::list<uint64_t> lru_;
  std::unordered_map<uint64_t, std::pair<std::string, std::list<uint64_t>::iterator>> blocks_;
};

CatalogFileType TypeOf(mount::FileType t) {
  switch (t) {
    case mount::FileType::kRegular:
      return CatalogFileType::kRegular;
    case mount::FileType::kDirectory:
      return CatalogFileType::kDirectory;
    case mount::FileType::kSymlink:
      return CatalogFileType::kSymlink;
    default:
      return CatalogFileType::kOther;
  }
}

class Indexer {
 public:
  Indexer(mount::GuestFiles& files, storage::SnapshotWriter& writer,
          const std::vector<std::string>& disks)
      : files_(files), writer_(writer) {
    for (size_t i = 0; i < disks.size(); ++i) disk_index_[disks[i]] = static_cast<uint32_t>(i);
  }

  // The tree of directory `path`; absent when its entries cannot be read.
  Result<std::optional<storage::TreeId>> Directory(const std::string& path,
                                                   storage::CatalogVolume* vol, int depth = 0) {
    // A damaged or hostile file system may loop a directory back onto an ancestor.
    Result<std::vector<mount::FileInfo>> listed =
        depth > kCatalogMaxDepth
            ? Result<std::vector<mount::FileInfo>>(Status::Corruption("too deep"))
            : files_.List(path);
    if (!listed.ok()) {
      ++vol->unreadable;
      return std::optional<storage::TreeId>();
    }
    ++vol->directories;
    std::vector<CatalogEntry> entries;
    entries.reserve(listed->size());
    for (const mount::FileInfo& f : *listed) {
      if (!storage::IsCatalogName(f.name)) {
        ++stats_.skipped_names;  // a damaged or hostile directory entry
        continue;
      }
      CatalogEntry e{f.name, TypeOf(f.type), f.size,  f.mode,  f.uid,
                     f.gid,  f.mtime,        f.atime, f.ctime, f.link_target};
      std::string child = path + "/" + f.name;
      if (f.type == mount::FileType::kDirectory) {
        OFFHOST_ASSIGN_OR_RETURN(e.tree, Directory(child, vol, depth + 1));
      } else if (f.type == mount::FileType::kRegular) {
        ++vol->files;
        vol->bytes += f.size;
        AddExtents(child, &e);
      }
      entries.push_back(std::move(e));
    }
    OFFHOST_ASSIGN_OR_RETURN(storage::TreeId id, writer_.AddCatalogTree(std::move(entries)));
    return std::optional<storage::TreeId>(id);
  }

  IndexStats& stats() { return stats_; }

 private:
  void AddExtents(const std::string& path, CatalogEntry* e) {
    auto extents = files_.Extents(path);
    if (!extents.ok()) return;  // the entry stays; its data is still read through the FS
    for (const mount::FileExtent& x : *extents) {
      auto it = disk_index_.find(x.disk);
      if (it == disk_index_.end()) continue;
      e->extents.push_back({x.file_offset, x.disk_offset, x.length, it->second});
    }
  }

  mount::GuestFiles& files_;
  storage::SnapshotWriter& writer_;
  std::map<std::string, uint32_t> disk_index_;
  IndexStats stats_;
};

}  // namespace

Result<IndexStats> IndexGuestFiles(const std::vector<mount::GuestDisk>& disks,
                                   storage::SnapshotWriter& writer) {
  storage::CatalogRecord record;
  std::vector<std::unique_ptr<BlockCache>> cached;
  std::vector<mount::GuestDisk> through_cache;
  for (const mount::GuestDisk& d : disks) {
    record.disks.push_back(d.name);
    cached.push_back(std::make_unique<BlockCache>(*d.device));
    through_cache.push_back({d.name, cached.back().get()});
  }
  auto files = mount::GuestFiles::Open(through_cache);
  if (!files.ok()) {
    IndexStats stats;
    for (const mount::GuestDisk& d : disks) {
      storage::CatalogVolume vol;
      vol.name = d.name;
      vol.not_indexed = files.status().message();
      stats.not_indexed.push_back(vol.name + ": " + vol.not_indexed);
      record.volumes.push_back(std::move(vol));
    }
    writer.SetCatalog(std::move(record));
    return stats;
  }
  Indexer indexer(**files, writer, record.disks);
  for (const mount::VolumeInfo& v : (*files)->volumes()) {
    storage::CatalogVolume vol;
    vol.name = v.name;
    vol.fs_type = v.fs_type;
    vol.offset = v.offset;
    vol.length = v.length;
    vol.not_indexed = v.not_indexed;
    if (vol.not_indexed.empty()) {
      OFFHOST_ASSIGN_OR_RETURN(vol.root, indexer.Directory("/" + v.name, &vol));
      if (!vol.root) vol.not_indexed = "its root directory cannot be read";
    }
    if (!vol.not_indexed.empty())
      indexer.stats().not_indexed.push_back(vol.name + ": " + vol.not_indexed);
    indexer.stats().files += vol.files;
    indexer.stats().directories += vol.directories;
    indexer.stats().unreadable_dirs += vol.unreadable;
    record.volumes.push_back(std::move(vol));
  }
  writer.SetCatalog(std::move(record));
  return indexer.stats();
}

}  // namespace offhost::proxy
