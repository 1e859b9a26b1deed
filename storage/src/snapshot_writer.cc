// SnapshotWriter: stages manifests in DIR/tmp and publishes a snapshot in one synced write.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>

#include <rocksdb/write_batch.h>

#include "catalog_store.h"
#include "index.h"
#include "little_endian.h"
#include "offhost/storage/datastore.h"
#include "records.h"

namespace offhost::storage {
namespace fs = std::filesystem;

namespace {

Result<std::string> ReadWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + path, errno);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::FromErrno("read " + path, err);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace

DiskManifestWriter::DiskManifestWriter(std::string name, std::string path, uint64_t size)
    : name_(std::move(name)),
      path_(std::move(path)),
      size_(size),
      builder_([this](uint32_t index, std::string segment) {
        return WriteSegment(index, segment);
      }) {}

DiskManifestWriter::~DiskManifestWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status DiskManifestWriter::WriteSegment(uint32_t index, const std::string& segment) {
  std::string rec;
  AppendLe<uint32_t>(&rec, index);
  AppendLe<uint32_t>(&rec, static_cast<uint32_t>(segment.size()));
  rec += segment;
  size_t done = 0;
  while (done < rec.size()) {
    ssize_t n = ::write(fd_, rec.data() + done, rec.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write manifest staging file " + path_, errno);
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status DiskManifestWriter::Finish(const DiskRecord& stats) {
  OFFHOST_ASSIGN_OR_RETURN(uint64_t described, builder_.Finish());
  if (described != size_) {
    return Status::InvalidArgument("manifest of disk " + name_ + " describes " +
                                   std::to_string(described) + " of its " +
                                   std::to_string(size_) + " bytes");
  }
  std::string source = record_.source;
  record_ = stats;
  if (record_.source.empty()) record_.source = source;
  record_.name = name_;
  record_.size = size_;
  ::close(fd_);
  fd_ = -1;
  finished_ = true;
  return Status::OK();
}

SnapshotWriter::SnapshotWriter(Datastore* ds, SnapshotRecord record, std::string staging_dir)
    : ds_(ds), record_(std::move(record)), staging_dir_(std::move(staging_dir)) {}

SnapshotWriter::~SnapshotWriter() {
  if (!done_) Abort();
  if (trees_fd_ >= 0) ::close(trees_fd_);
}

Result<DiskManifestWriter*> SnapshotWriter::AddDisk(const std::string& name,
                                                    const std::string& source, uint64_t size) {
  OFFHOST_RETURN_IF_ERROR(ValidateName("disk", name));
  for (const auto& d : disks_) {
    if (d->name_ == name) return Status::InvalidArgument("disk '" + name + "' given twice");
  }
  std::string path = staging_dir_ + "/" + name + ".manifest";
  std::unique_ptr<DiskManifestWriter> w(new DiskManifestWriter(name, path, size));
  w->fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (w->fd_ < 0) return Status::FromErrno("create manifest staging file " + path, errno);
  w->record_.source = source;
  disks_.push_back(std::move(w));
  return disks_.back().get();
}

Result<SnapshotRecord> SnapshotWriter::Commit() {
  if (done_) return Status::FailedPrecondition("snapshot already committed");
  if (disks_.empty()) return Status::InvalidArgument("a snapshot needs at least one disk");
  for (const auto& d : disks_) {
    if (!d->finished()) return Status::FailedPrecondition("disk " + d->name_ + " is unfinished");
  }
  // Chunks first: once the index names them, they must survive a power loss.
  OFFHOST_RETURN_IF_ERROR(ds_->chunks().Sync());

  rocksdb::WriteBatch batch;
  record_.disks.clear();
  for (const auto& d : disks_) {
    record_.disks.push_back(d->record_);
    OFFHOST_ASSIGN_OR_RETURN(std::string staged, ReadWholeFile(d->path_));
    size_t pos = 0;
    while (pos < staged.size()) {
      if (staged.size() - pos < 8) return Status::Corruption("truncated staging " + d->path_);
      uint32_t index = GetLe<uint32_t>(staged.data() + pos), len = GetLe<uint32_t>(staged.data() + pos + 4);
      pos += 8;
      if (staged.size() - pos < len) return Status::Corruption("truncated staging " + d->path_);
      batch.Put(ManifestKey(record_.vm, record_.id, d->name_, index),
                rocksdb::Slice(staged.data() + pos, len));
      pos += len;
    }
  }
  std::string trees;
  if (trees_fd_ >= 0) {
    OFFHOST_ASSIGN_OR_RETURN(trees, ReadWholeFile(CatalogStagingPath(staging_dir_)));
  }
  OFFHOST_RETURN_IF_ERROR(
      AddStagedCatalog(staging_dir_, trees, catalog_, record_.vm, record_.id, &batch));
  stored_trees_.reset();  // a read-only handle must not outlive the write below
  record_.finished = static_cast<int64_t>(std::time(nullptr));
  if (!record_.meta.vm_config.empty()) {
    batch.Put(ConfigKey(record_.vm, record_.id), record_.meta.vm_config);
  }
  batch.Put(SnapshotKey(record_.vm, record_.id), ToJson(record_).dump());
  batch.Delete(RunningKey(record_.vm, record_.id));

  OFFHOST_ASSIGN_OR_RETURN(auto index, Index::OpenWritable(ds_->dir() + "/index"));
  OFFHOST_RETURN_IF_ERROR(index->WriteSynced(&batch));  // the snapshot appears here, whole
  done_ = true;
  std::error_code ec;
  fs::remove_all(staging_dir_, ec);
  return record_;
}

void SnapshotWriter::Abort() {
  done_ = true;
  disks_.clear();
  std::error_code ec;
  fs::remove_all(staging_dir_, ec);
  auto index = Index::OpenWritable(ds_->dir() + "/index");
  if (!index.ok()) return;  // the next BeginSnapshot removes the marker
  rocksdb::WriteBatch batch;
  batch.Delete(RunningKey(record_.vm, record_.id));
  (*index)->WriteSynced(&batch).IgnoreError();
}

}  // namespace offhost::storage
