#include "offhost/storage/datastore.h"

#include <fcntl.h>
#include <rocksdb/write_batch.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "index.h"
#include "prune_leases.h"
#include "records.h"

namespace offhost::storage {
namespace fs = std::filesystem;

namespace {

constexpr char kConfigName[] = "offhost-datastore.json";

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FromErrno("open " + path, errno);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Replaces `path` atomically. The temporary name is this process's own (two processes
// rewriting one file must not share it), and a replaced file keeps its mode.
Status WriteFileDurably(const std::string& path, const std::string& content) {
  static std::atomic<uint64_t> counter{0};
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno("create " + tmp, errno);
  struct stat old;
  bool ok = (::stat(path.c_str(), &old) != 0 || ::fchmod(fd, old.st_mode & 07777) == 0) &&
            ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return Status::FromErrno("write " + tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno("rename " + tmp, err);
  }
  int dfd = ::open(fs::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::OK();
}

std::string NewUuid() {
  std::ifstream in("/proc/sys/kernel/random/uuid");
  std::string u;
  std::getline(in, u);
  return u;
}

std::string HostName() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

bool ProcessAlive(int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace

uint64_t SnapshotRecord::logical_bytes() const {
  uint64_t n = 0;
  for (const auto& d : disks) n += d.size;
  return n;
}
uint64_t SnapshotRecord::bytes_read() const {
  uint64_t n = 0;
  for (const auto& d : disks) n += d.bytes_read;
  return n;
}
uint64_t SnapshotRecord::new_bytes() const {
  uint64_t n = 0;
  for (const auto& d : disks) n += d.new_bytes;
  return n;
}

Status ValidateName(const std::string& what, const std::string& name) {
  bool ok = !name.empty() && name.size() <= 128 && name[0] != '.' && name[0] != '-';
  for (char c : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
  }
  if (ok) return Status::OK();
  return Status::InvalidArgument(what + " name '" + name +
                                 "' is invalid: use 1-128 letters, digits, '.', '_' or '-', "
                                 "not starting with '.' or '-'");
}

Datastore::Datastore(std::string dir, DatastoreConfig config)
    : dir_(std::move(dir)), config_(std::move(config)) {}

Datastore::~Datastore() = default;

Status Datastore::Init(const std::string& dir, DatastoreConfig config) {
  std::error_code ec;
  if (fs::exists(fs::path(dir) / kConfigName, ec)) {
    return Status::AlreadyExists("'" + dir + "' is already an offhost datastore");
  }
  if (fs::exists(dir, ec) && (!fs::is_directory(dir, ec) || !fs::is_empty(dir, ec))) {
    return Status::AlreadyExists("'" + dir +
                                 "' exists and is not an empty directory; give a new or empty "
                                 "directory for the datastore");
  }
  auto chunker = MakeFixedChunker(config.chunk_size);
  if (!chunker.ok()) return chunker.status();
  if (config.zstd_level < 1 || config.zstd_level > 19) {
    return Status::InvalidArgument("zstd level " + std::to_string(config.zstd_level) +
                                   " must be 1-19");
  }
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("create datastore directory " + dir + ": " + ec.message());
  for (const char* sub : {"chunks", "tmp"}) {
    if (::mkdir((fs::path(dir) / sub).c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::FromErrno("create " + (fs::path(dir) / sub).string(), errno);
    }
  }
  OFFHOST_RETURN_IF_ERROR(Index::Create((fs::path(dir) / "index").string()));
  config.uuid = NewUuid();
  config.created = static_cast<int64_t>(std::time(nullptr));
  // The config file is written last: its presence is what makes DIR a datastore.
  return WriteFileDurably((fs::path(dir) / kConfigName).string(), ToJson(config).dump(2) + "\n");
}

Result<std::unique_ptr<Datastore>> Datastore::Open(const std::string& dir, bool for_writing) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    return Status::NotFound("datastore '" + dir +
                            "' does not exist; create it with: offhost datastore init " + dir);
  }
  std::string config_path = (fs::path(dir) / kConfigName).string();
  if (!fs::exists(config_path, ec)) {
    return Status::FailedPrecondition("'" + dir + "' is not an offhost datastore (it has no " +
                                      kConfigName +
                                      "); give the directory made by 'offhost datastore init'");
  }
  OFFHOST_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(config_path));
  OFFHOST_ASSIGN_OR_RETURN(DatastoreConfig config, ConfigFromJson(text, config_path));
  if (for_writing) {
    for (const char* sub : {"", "chunks", "tmp", "index"}) {
      std::string p = (fs::path(dir) / sub).string();
      if (::access(p.c_str(), W_OK) != 0) {
        return Status::FailedPrecondition(
            "datastore '" + dir + "' is not writable by this user (uid " +
            std::to_string(::getuid()) + "): " + p + ": " + std::strerror(errno) +
            "; run offhost as the datastore's owner or fix its permissions");
      }
    }
  }
  if (config.chunker != "fixed") {
    return Status::NotSupported("datastore '" + dir + "' uses chunker '" + config.chunker +
                                "', which this offhost does not know; upgrade offhost");
  }
  std::unique_ptr<Datastore> ds(new Datastore(dir, config));
  OFFHOST_ASSIGN_OR_RETURN(ds->chunks_, OpenLocalChunkStore((fs::path(dir) / "chunks").string()));
  OFFHOST_ASSIGN_OR_RETURN(ds->chunker_, MakeFixedChunker(config.chunk_size));
  return ds;
}

Result<std::vector<SnapshotRecord>> Datastore::ListSnapshots(const std::string& vm) {
  OFFHOST_ASSIGN_OR_RETURN(auto index, Index::OpenReadOnly(dir_ + "/index"));
  std::vector<SnapshotRecord> out;
  std::string prefix = SnapshotPrefix(vm);
  std::unique_ptr<rocksdb::Iterator> it(index->db()->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    OFFHOST_ASSIGN_OR_RETURN(auto rec,
                             SnapshotFromJson(it->value().ToString(), it->key().ToString()));
    out.push_back(std::move(rec));
  }
  OFFHOST_RETURN_IF_ERROR(FromRocks(it->status(), "list snapshots in " + dir_));
  return out;
}

Result<SnapshotRecord> Datastore::FindSnapshot(const std::string& vm, const std::string& id) {
  OFFHOST_RETURN_IF_ERROR(ValidateName("VM", vm));
  OFFHOST_ASSIGN_OR_RETURN(auto all, ListSnapshots(vm));
  bool uuid_like = vm.size() == 36 && std::count(vm.begin(), vm.end(), '-') == 4;
  if (all.empty() && uuid_like) {  // a VM may be named by its hypervisor UUID
    OFFHOST_ASSIGN_OR_RETURN(auto every, ListSnapshots());
    for (auto& s : every) {
      if (s.meta.vm_uuid == vm) all.push_back(std::move(s));
    }
    std::sort(all.begin(), all.end(), [](const SnapshotRecord& a, const SnapshotRecord& b) {
      return a.finished < b.finished;
    });
  }
  if (all.empty()) {
    return Status::NotFound("VM '" + vm + "' has no snapshots in datastore " + dir_ +
                            "; list them with: offhost snapshots --datastore " + dir_);
  }
  if (id == "latest") return all.back();
  for (auto& s : all) {
    if (s.id == id) return s;
  }
  return Status::NotFound("snapshot '" + vm + "@" + id + "' not found in datastore " + dir_ +
                          " (latest is " + vm + "@" + all.back().id + ")");
}

Result<std::string> Datastore::GetVmConfig(const SnapshotRecord& snap) {
  OFFHOST_ASSIGN_OR_RETURN(auto index, Index::OpenReadOnly(dir_ + "/index"));
  OFFHOST_ASSIGN_OR_RETURN(auto value, index->Get(ConfigKey(snap.vm, snap.id)));
  return value.value_or("");
}

struct ManifestReader::Impl {
  std::unique_ptr<Index> index;
  std::unique_ptr<rocksdb::Iterator> it;
  std::string prefix;
  std::string where;
  uint64_t disk_size = 0;
  uint64_t next_offset = 0;
  std::vector<ManifestEntry> segment;
  size_t pos = 0;
  bool started = false;
};

ManifestReader::ManifestReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ManifestReader::~ManifestReader() = default;

Result<bool> ManifestReader::Next(ManifestEntry* entry) {
  Impl& m = *impl_;
  while (m.pos == m.segment.size()) {
    if (m.started) m.it->Next();
    m.started = true;
    if (!m.it->Valid() || !m.it->key().starts_with(m.prefix)) {
      OFFHOST_RETURN_IF_ERROR(FromRocks(m.it->status(), "read " + m.where));
      if (m.next_offset != m.disk_size) {
        return Status::Corruption(m.where + " describes " + std::to_string(m.next_offset) +
                                  " bytes but the disk has " + std::to_string(m.disk_size));
      }
      return false;
    }
    auto entries = DecodeManifestSegment({m.it->value().data(), m.it->value().size()});
    if (!entries.ok()) return entries.status().WithContext(m.where);
    m.segment = std::move(*entries);
    m.pos = 0;
  }
  *entry = m.segment[m.pos++];
  if (entry->offset != m.next_offset) {
    return Status::Corruption(m.where + " has a gap at disk offset " +
                              std::to_string(m.next_offset));
  }
  m.next_offset = entry->offset + entry->length;
  return true;
}

Result<std::unique_ptr<ManifestReader>> Datastore::OpenManifest(const SnapshotRecord& snap,
                                                                const std::string& disk) {
  const DiskRecord* rec = nullptr;
  std::string names;
  for (const auto& d : snap.disks) {
    if (d.name == disk) rec = &d;
    names += (names.empty() ? "" : ", ") + d.name;
  }
  if (!rec) {
    return Status::NotFound("snapshot " + snap.vm + "@" + snap.id + " has no disk '" + disk +
                            "' (it has: " + names + ")");
  }
  auto impl = std::make_unique<ManifestReader::Impl>();
  // A read-only open can race a writer's memtable flush and see an older state; the snapshot
  // record and its manifest are one batch, so seeing the record means the manifest is whole.
  for (int attempt = 0;; ++attempt) {
    OFFHOST_ASSIGN_OR_RETURN(impl->index, Index::OpenReadOnly(dir_ + "/index"));
    OFFHOST_ASSIGN_OR_RETURN(auto record, impl->index->Get(SnapshotKey(snap.vm, snap.id)));
    if (record) break;
    if (attempt >= 500) {
      return Status::NotFound("snapshot " + snap.vm + "@" + snap.id + " is no longer in " + dir_);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  impl->prefix = ManifestPrefix(snap.vm, snap.id, disk);
  impl->where = "manifest of " + snap.vm + "@" + snap.id + " disk " + disk;
  impl->disk_size = rec->size;
  impl->it.reset(impl->index->db()->NewIterator(rocksdb::ReadOptions()));
  impl->it->Seek(impl->prefix);
  return std::unique_ptr<ManifestReader>(new ManifestReader(std::move(impl)));
}

Status Datastore::ForEachManifestEntry(const SnapshotRecord& snap, const std::string& disk,
                                       const std::function<Status(const ManifestEntry&)>& fn) {
  OFFHOST_ASSIGN_OR_RETURN(auto reader, OpenManifest(snap, disk));
  ManifestEntry e;
  for (;;) {
    OFFHOST_ASSIGN_OR_RETURN(bool more, reader->Next(&e));
    if (!more) return Status::OK();
    OFFHOST_RETURN_IF_ERROR(fn(e));
  }
}

Result<std::vector<SnapshotRecord>> Datastore::DeleteSnapshots(
    const std::vector<SnapshotRecord>& snapshots) {
  std::vector<SnapshotRecord> in_use, remove;
  if (snapshots.empty()) return in_use;
  for (const auto& snap : snapshots) {
    OFFHOST_RETURN_IF_ERROR(ValidateName("VM", snap.vm));
    // Ids are UTC times (YYYY-MM-DDTHH:MM:SSZ): one with a '/' would name other keys (and
    // files: the lease files are named after them).
    std::tm tm{};
    const char* end = strptime(snap.id.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (snap.id.size() != 20 || !end || *end != '\0') {
      return Status::InvalidArgument("'" + snap.id + "' is not a snapshot id; nothing was removed");
    }
  }
  // Held until the index write is done: a reader that comes meanwhile waits, then finds the
  // snapshot gone.
  OFFHOST_ASSIGN_OR_RETURN(auto leases,
                           SnapshotPruneLeases::Take(dir_, snapshots, &remove, &in_use));
  if (remove.empty()) return in_use;
  OFFHOST_ASSIGN_OR_RETURN(auto index, Index::OpenWritable(dir_ + "/index"));
  rocksdb::WriteBatch batch;
  for (const auto& snap : remove) {
    batch.Delete(SnapshotKey(snap.vm, snap.id));
    batch.Delete(ConfigKey(snap.vm, snap.id));
    batch.Delete(CatalogKey(snap.vm, snap.id));
    const std::string prefix = "m/" + snap.vm + "/" + snap.id + "/";  // every disk's segments
    std::unique_ptr<rocksdb::Iterator> it(index->db()->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      batch.Delete(it->key());
    }
    OFFHOST_RETURN_IF_ERROR(
        FromRocks(it->status(), "list the manifests of " + snap.vm + "@" + snap.id));
  }
  OFFHOST_RETURN_IF_ERROR(index->WriteSynced(&batch));
  leases.RemoveFiles();
  return in_use;
}

Result<std::vector<RunningBackup>> ListRunningBackups(Index& index, const std::string& dir) {
  std::unique_ptr<rocksdb::Iterator> it(index.db()->NewIterator(rocksdb::ReadOptions()));
  std::vector<RunningBackup> out;
  std::string host = HostName();
  for (it->Seek("r/"); it->Valid() && it->key().starts_with("r/"); it->Next()) {
    nlohmann::json m = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    RunningBackup b;
    b.key = it->key().ToString();
    if (!m.is_discarded()) {
      b.host = m.value("host", "");
      b.pid = m.value("pid", int64_t{0});
      b.started = m.value("started", int64_t{0});
    }
    // A marker that cannot be read is taken as a backup running since the epoch: it holds
    // garbage collection's cut-off back rather than risk its chunks.
    if (b.host == host && !m.is_discarded() && !ProcessAlive(b.pid)) continue;
    out.push_back(std::move(b));
  }
  OFFHOST_RETURN_IF_ERROR(FromRocks(it->status(), "list running backups in " + dir));
  return out;
}

// Removes the markers and staging directories of backups whose process is gone; the caller
// holds the index open for writing (its lock serialises this with other writers).
Result<int> RemoveDeadBackups(Index& index, const std::string& dir) {
  std::unique_ptr<rocksdb::Iterator> it(index.db()->NewIterator(rocksdb::ReadOptions()));
  rocksdb::WriteBatch batch;
  std::set<std::string> live;  // staging directories of backups that may still run
  int removed = 0;
  std::string host = HostName();
  for (it->Seek("r/"); it->Valid() && it->key().starts_with("r/"); it->Next()) {
    nlohmann::json m = nlohmann::json::parse(it->value().ToString(), nullptr, false);
    if (m.is_discarded()) continue;
    std::string staging = fs::path(m.value("staging", "")).filename().string();
    if (m.value("host", "") != host || ProcessAlive(m.value("pid", int64_t{0}))) {
      live.insert(staging);
      continue;
    }
    batch.Delete(it->key());
    ++removed;
  }
  OFFHOST_RETURN_IF_ERROR(FromRocks(it->status(), "list running backups in " + dir));
  if (removed > 0) OFFHOST_RETURN_IF_ERROR(index.WriteSynced(&batch));
  // Every other staging directory is dead: its marker was just removed, or its backup died
  // between creating it and writing the marker (both happen under the index lock, which we
  // hold), or after committing.
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir + "/tmp", ec)) {
    std::string name = entry.path().filename().string();
    // Only staging directories (VM@ID); other entries belong to running snapshot drivers.
    if (name.find('@') == std::string::npos || live.count(name)) continue;
    fs::remove_all(entry.path(), ec);
  }
  return removed;
}

// A backup writes manifest segments of format 2, which offhost versions before it cannot read:
// the config says so first (version 2), so that they refuse the datastore by its version
// instead of calling its manifests damaged. Called with the index open for writing, whose
// lock keeps two processes from rewriting the config at once; the file is read again under it.
Status Datastore::MarkCurrentVersion() const {
  if (config_.version >= DatastoreConfig::kDatastoreVersion) return Status::OK();
  const std::string path = dir_ + "/" + kConfigName;
  OFFHOST_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  OFFHOST_ASSIGN_OR_RETURN(DatastoreConfig on_disk, ConfigFromJson(text, path));
  if (on_disk.version < DatastoreConfig::kDatastoreVersion) {
    on_disk.version = DatastoreConfig::kDatastoreVersion;
    OFFHOST_RETURN_IF_ERROR(WriteFileDurably(path, ToJson(on_disk).dump(2) + "\n")
                                .WithContext("mark datastore '" + dir_ + "' as version " +
                                             std::to_string(on_disk.version)));
  }
  return Status::OK();
}

Result<std::unique_ptr<SnapshotWriter>> Datastore::BeginSnapshot(const std::string& vm) {
  OFFHOST_RETURN_IF_ERROR(ValidateName("VM", vm));
  OFFHOST_ASSIGN_OR_RETURN(auto index, Index::OpenWritable(dir_ + "/index"));
  OFFHOST_RETURN_IF_ERROR(MarkCurrentVersion());
  // Staging left by backups that were killed goes first, under the same open of the index.
  RemoveDeadBackups(*index, dir_).status().IgnoreError();
  SnapshotRecord rec;
  rec.vm = vm;
  rec.started = static_cast<int64_t>(std::time(nullptr));
  // Ids are the start time, strictly increasing per VM even if the clock steps back, so the
  // newest snapshot always sorts last ("latest", the base of the next incremental).
  int64_t first = rec.started;
  for (const std::string& prefix : {SnapshotPrefix(vm), "r/" + vm + "/"}) {
    std::unique_ptr<rocksdb::Iterator> it(index->db()->NewIterator(rocksdb::ReadOptions()));
    it->SeekForPrev(prefix + "\xff");
    if (it->Valid() && it->key().starts_with(prefix)) {
      struct tm tm = {};
      std::string last = it->key().ToString().substr(prefix.size());
      if (strptime(last.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm))
        first = std::max<int64_t>(first, timegm(&tm) + 1);
    }
  }
  for (int64_t t = first;; ++t) {
    rec.id = FormatUtc(t);
    OFFHOST_ASSIGN_OR_RETURN(auto done, index->Get(SnapshotKey(vm, rec.id)));
    OFFHOST_ASSIGN_OR_RETURN(auto running, index->Get(RunningKey(vm, rec.id)));
    std::error_code ec;
    bool staged = fs::exists(dir_ + "/tmp/" + vm + "@" + rec.id, ec);  // killed before its marker
    if (!done && !running && !staged) break;
  }
  std::string staging = dir_ + "/tmp/" + vm + "@" + rec.id;
  if (::mkdir(staging.c_str(), 0755) != 0) {
    return Status::FromErrno("create staging directory " + staging, errno);
  }
  nlohmann::json marker = {
      {"pid", ::getpid()}, {"host", HostName()}, {"started", rec.started}, {"staging", staging}};
  rocksdb::WriteBatch batch;
  batch.Put(RunningKey(vm, rec.id), marker.dump());
  Status st = index->WriteSynced(&batch);
  if (!st.ok()) {
    fs::remove_all(staging);
    return st;
  }
  return std::unique_ptr<SnapshotWriter>(new SnapshotWriter(this, rec, staging));
}

}  // namespace offhost::storage
