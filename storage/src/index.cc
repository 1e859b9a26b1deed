#include "index.h"

#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace offhost::storage {

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsNotFound()) return Status::NotFound(what + ": " + s.ToString());
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::IOError(what + ": " + s.ToString());
}

static rocksdb::Options IndexOptions() {
  rocksdb::Options o;
  o.create_if_missing = false;
  o.max_open_files = 256;
  // Every open (a backup opens the index a few times) would otherwise write a new info log
  // with the whole options dump: tens of KB per backup and time spent at each open.
  o.info_log_level = rocksdb::WARN_LEVEL;
  o.keep_log_file_num = 2;
  o.compression = rocksdb::kZSTD;
  // RocksDB opens a database's table files with up to 16 threads it starts for each open;
  // an index has a few table files, and a backup opens it several times: one thread makes a
  // read-only open 0.3 ms instead of 1.9 ms.
  o.max_file_opening_threads = 1;
  return o;
}

Status Index::Create(const std::string& dir) {
  rocksdb::Options o = IndexOptions();
  o.create_if_missing = true;
  o.error_if_exists = true;
  rocksdb::DB* raw = nullptr;
  OFFHOST_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(o, dir, &raw), "create index " + dir));
  delete raw;
  return Status::OK();
}

Result<std::unique_ptr<Index>> Index::OpenReadOnly(const std::string& dir) {
  rocksdb::Options options = IndexOptions();
  // Open every table file now: a writer in another process may compact and delete files
  // later, which must not disturb a listing or restore that is under way.
  options.max_open_files = -1;
  for (int attempt = 0;; ++attempt) {
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::OpenForReadOnly(options, dir, &raw);
    if (s.ok()) return std::unique_ptr<Index>(new Index(dir, std::unique_ptr<rocksdb::DB>(raw)));
    // A writer replaced files between our reading the MANIFEST and opening them: try again.
    bool raced = s.ToString().find("No such file") != std::string::npos;
    if (!raced || attempt >= 500) return FromRocks(s, "open index " + dir);  // ~5 s
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<std::unique_ptr<Index>> Index::OpenWritable(const std::string& dir) {
  using namespace std::chrono;
  auto deadline = steady_clock::now() + minutes(5);
  for (;;) {
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(IndexOptions(), dir, &raw);
    if (s.ok()) return std::unique_ptr<Index>(new Index(dir, std::unique_ptr<rocksdb::DB>(raw)));
    // Another offhost process holds the index for a moment (a commit); wait for it.
    bool locked = s.IsIOError() && s.ToString().find("lock") != std::string::npos;
    if (!locked || steady_clock::now() > deadline) {
      return FromRocks(s, locked ? "index " + dir + " stayed locked by another process for 5 "
                                   "minutes; check for a hung offhost process"
                                 : "open index " + dir);
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
}

Result<std::optional<std::string>> Index::Get(const std::string& key) {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  OFFHOST_RETURN_IF_ERROR(FromRocks(s, "read index " + dir_));
  return std::optional<std::string>(std::move(value));
}

Status Index::WriteSynced(rocksdb::WriteBatch* batch) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(db_->Write(wo, batch), "write index " + dir_);
}

std::string SnapshotKey(const std::string& vm, const std::string& id) {
  return "s/" + vm + "/" + id;
}
std::string SnapshotPrefix(const std::string& vm) { return vm.empty() ? "s/" : "s/" + vm + "/"; }
std::string ConfigKey(const std::string& vm, const std::string& id) {
  return "c/" + vm + "/" + id;
}
std::string CatalogKey(const std::string& vm, const std::string& id) {
  return "f/" + vm + "/" + id;
}
std::string TreeKey(const ChunkId& id) {
  return "t/" + std::string(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
}
std::optional<ChunkId> TreeIdOfKey(const std::string& key) {
  ChunkId id;
  if (key.size() != 2 + id.bytes.size() || !key.starts_with("t/")) return std::nullopt;
  std::memcpy(id.bytes.data(), key.data() + 2, id.bytes.size());
  return id;
}
std::string RunningKey(const std::string& vm, const std::string& id) {
  return "r/" + vm + "/" + id;
}
std::string ManifestPrefix(const std::string& vm, const std::string& id,
                           const std::string& disk) {
  return "m/" + vm + "/" + id + "/" + disk + "/";
}
std::string ManifestKey(const std::string& vm, const std::string& id, const std::string& disk,
                        uint32_t segment) {
  std::string k = ManifestPrefix(vm, id, disk);
  for (int i = 3; i >= 0; --i) k.push_back(static_cast<char>(segment >> (8 * i)));  // big-endian
  return k;
}

}  // namespace offhost::storage
