// Chunks as files in a local directory. Layout and durability rules:
// docs/datastore-format.md ("Chunk store").
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "aligned_buffer.h"
#include "offhost/storage/chunk_store.h"

namespace offhost::storage {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = other.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

Status WriteAll(int fd, std::span<const char> data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write " + path, errno);
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

bool IsHexName(const char* name, size_t len) {
  for (size_t i = 0; i < len; ++i) {
    char c = name[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return name[len] == '\0';
}

// Chunks are written to temporary names without an fsync each; a flush makes a whole batch
// durable with fsync() calls issued together from several threads (the file system
// commits its journal once for many of them, where one fsync after each write pays a commit
// each) and only then renames the batch into place. A chunk therefore never appears under
// its name before its bytes are on disk, and a crash leaves only temporary files
// (docs/datastore-format.md, "Chunk store rules"). syncfs() was tried: it also waits for
// every other writer of the file system (VM images, other tenants) and cost seconds.
constexpr size_t kFlushChunks = 1024;
constexpr size_t kFlushBytes = 256u << 20;
constexpr size_t kSyncThreads = 16;

// fsync()s every file (or directory) in `paths`, several at a time.
Status SyncFiles(const std::vector<std::string>& paths) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first;
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < paths.size();) {
      Fd fd(::open(paths[i].c_str(), O_RDONLY | O_CLOEXEC));
      Status st;
      if (fd.get() < 0)
        st = Status::FromErrno("open " + paths[i], errno);
      else if (::fsync(fd.get()) != 0)
        st = Status::FromErrno("fsync " + paths[i], errno);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = st;
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < std::min(kSyncThreads, paths.size()); ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  return first;
}

// Chunk files are written with O_DIRECT where the file system takes it: a backup does not read
// its chunks again soon, so copying them through the page cache only costs CPU (a quarter of
// an incremental backup's CPU on the benchmark machine) and evicts pages the proxy still uses.
// The last block is written zero-padded and the file cut to its size afterwards.

// Writes `n` bytes (whole blocks) of `buf` at `offset`. False when the file system refuses
// direct I/O on the first write.
Result<bool> WriteBlocks(int fd, const std::string& path, const char* buf, size_t n,
                         size_t offset) {
  for (size_t done = 0; done < n;) {
    ssize_t w = ::pwrite(fd, buf + done, n - done, static_cast<off_t>(offset + done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EINVAL && offset + done == 0) return false;  // alignment refused
    if (w < 0) return Status::FromErrno("write " + path, errno);
    if (w == 0) return Status::IOError("write " + path + ": the file system took no bytes");
    done += static_cast<size_t>(w);
    // A short write that ends off a block boundary (the disk filling up) would make the next
    // O_DIRECT write fail with EINVAL and hide the cause: go on without O_DIRECT.
    if ((offset + done) % kDirectAlign != 0 && ::fcntl(fd, F_SETFL, 0) != 0) {
      return Status::FromErrno("write " + path, errno);
    }
  }
  return true;
}

// Writes `data` to the new file `path` bypassing the page cache. False (and no file left)
// when the file system does not support O_DIRECT. Data that starts on a block boundary (a
// ChunkEncoder's output) is written in place up to its last whole block; only the rest goes
// through a block-aligned copy.
Result<bool> WriteFileDirect(const std::string& path, std::span<const char> data) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, 0644));
  if (fd.get() < 0) {
    if (errno != EINVAL) return Status::FromErrno("create " + path, errno);
    // Some file systems (ramfs, tmpfs before Linux 6.6, some FUSE) create the file and only
    // then refuse O_DIRECT: the name is ours (O_EXCL), so remove it for the buffered write.
    ::unlink(path.c_str());
    return false;
  }
  const bool aligned = reinterpret_cast<uintptr_t>(data.data()) % kDirectAlign == 0;
  const size_t in_place = aligned ? data.size() / kDirectAlign * kDirectAlign : 0;
  const size_t rest = data.size() - in_place;
  const size_t padded = (rest + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  thread_local AlignedBuffer buffer;
  char* copy = buffer.Reserve(std::max(padded, kDirectAlign));
  if (!copy)
    return Status::IOError("out of memory for a " + std::to_string(padded) + "-byte chunk write");
  std::memcpy(copy, data.data() + in_place, rest);
  std::memset(copy + rest, 0, padded - rest);
  Result<bool> written = WriteBlocks(fd.get(), path, data.data(), in_place, 0);
  if (written.ok() && *written) written = WriteBlocks(fd.get(), path, copy, padded, in_place);
  if (!written.ok() || !*written) {
    ::unlink(path.c_str());
    return written;
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(data.size())) != 0) {
    return Status::FromErrno("truncate " + path, errno);
  }
  if (::close(fd.release()) != 0) return Status::FromErrno("close " + path, errno);
  return true;
}

Status WriteFileBuffered(const std::string& path, std::span<const char> data) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) return Status::FromErrno("create " + path, errno);
  OFFHOST_RETURN_IF_ERROR(WriteAll(fd.get(), data, path));
  if (::close(fd.release()) != 0) return Status::FromErrno("close " + path, errno);
  return Status::OK();
}

struct PendingChunk {
  std::string tmp, path, subdir;
  bool synced = false;  // made durable already by the store's syncer thread
  // The syncer's fsync failed with this. Never retried: after a failed fsync Linux may report
  // the next one as a success although the data was lost.
  int sync_errno = 0;
};

class LocalChunkStore final : public ChunkStore {
 public:
  explicit LocalChunkStore(std::string dir) : dir_(std::move(dir)) {}
  // Chunks never made durable by a Sync() (a backup that failed) are dropped, not named: their
  // space is given back, which matters most when the failure was a full file system.
  ~LocalChunkStore() override {
    if (syncer_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_syncer_ = true;
      }
      to_sync_cv_.notify_all();
      syncer_.join();
    }
    for (const auto& [id, c] : pending_) ::unlink(c.tmp.c_str());
  }

  std::string description() const override { return "chunk store " + dir_; }

  std::string Locate(const ChunkId& id) const override {
    std::string hex = id.Hex();
    return dir_ + "/" + hex.substr(0, 4) + "/" + hex;
  }

  Result<bool> Contains(const ChunkId& id) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (pending_.count(id)) return true;  // durable and named by the next Sync()
    }
    OFFHOST_ASSIGN_OR_RETURN(bool present, Claim(id));
    // Another writer may not have synced this directory yet; our Sync() must cover it
    // before we reference the chunk.
    if (present) MarkDirty(SubdirOf(id));
    return present;
  }

  Result<bool> IsStored(const ChunkId& id) override { return Claim(id); }

  Result<bool> Put(const ChunkId& id, std::span<const char> encoded) override {
    OFFHOST_ASSIGN_OR_RETURN(bool present, Contains(id));
    if (present) return false;
    std::string subdir = SubdirOf(id);
    OFFHOST_RETURN_IF_ERROR(EnsureSubdir(subdir));
    std::string path = Locate(id);
    std::string tmp =
        path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter_.fetch_add(1));
    Status st = WriteChunkFile(tmp, encoded);
    if (!st.ok()) {
      ::unlink(tmp.c_str());
      return st.WithContext("store chunk " + id.ShortHex() + " in " + dir_);
    }
    bool flush;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!pending_.emplace(id, PendingChunk{tmp, path, subdir}).second) {
        ::unlink(tmp.c_str());  // another thread wrote the same chunk meanwhile
        return false;
      }
      pending_bytes_ += encoded.size();
      flush = pending_.size() >= kFlushChunks || pending_bytes_ >= kFlushBytes;
      to_sync_.push_back(id);
      if (!syncer_.joinable()) syncer_ = std::thread([this] { SyncerLoop(); });
    }
    to_sync_cv_.notify_one();
    if (flush) OFFHOST_RETURN_IF_ERROR(Flush());
    return true;
  }

  Status Sync() override {
    OFFHOST_RETURN_IF_ERROR(Flush());
    std::set<std::string> dirs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      dirs.swap(dirty_);
    }
    // The new names must survive a crash too; directories are synced together, like files.
    Status st = SyncFiles({dirs.begin(), dirs.end()});
    if (!st.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      dirty_.insert(dirs.begin(), dirs.end());
    }
    return st;
  }

  Result<std::string> Get(const ChunkId& id) override {
    std::string path = Locate(id);
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0 && errno == ENOENT) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pending_.find(id);
      if (it != pending_.end()) fd = Fd(::open(it->second.tmp.c_str(), O_RDONLY | O_CLOEXEC));
    }
    if (fd.get() < 0) {
      if (errno == ENOENT) return Status::NotFound("chunk " + id.Hex() + " is missing");
      return Status::FromErrno("open " + path, errno);
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return Status::FromErrno("stat " + path, errno);
    std::string data(static_cast<size_t>(st.st_size), '\0');
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n =
          ::pread(fd.get(), data.data() + done, data.size() - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno("read " + path, errno);
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    data.resize(done);
    return data;
  }

  Result<std::string> Quarantine(const ChunkId& id) override {
    std::string path = Locate(id), moved = path + ".damaged";
    if (::rename(path.c_str(), moved.c_str()) != 0) {
      return Status::FromErrno("move damaged chunk " + path + " aside", errno);
    }
    MarkDirty(SubdirOf(id));
    return moved;
  }

  Status ForEach(const std::function<Status(const ChunkId&)>& fn) override {
    OFFHOST_ASSIGN_OR_RETURN(auto subdirs, ListSubdirs());
    for (const auto& sub : subdirs) {
      std::string path = dir_ + "/" + sub;
      DIR* d = ::opendir(path.c_str());
      if (!d) return Status::FromErrno("open chunk directory " + path, errno);
      std::vector<ChunkId> ids;
      while (dirent* e = ::readdir(d)) {
        // Temporary files (NAME.tmp.PID.N) of running or interrupted writers are skipped.
        if (std::strlen(e->d_name) != 64 || !IsHexName(e->d_name, 64)) continue;
        if (auto id = ChunkId::FromHex(e->d_name)) ids.push_back(*id);
      }
      ::closedir(d);
      for (const auto& id : ids) OFFHOST_RETURN_IF_ERROR(fn(id));
    }
    return Status::OK();
  }

  Result<SweepStats> Sweep(const SweepOptions& o) override {
    OFFHOST_ASSIGN_OR_RETURN(auto subdirs, ListSubdirs());
    // Directories are swept on several threads: a delete mostly waits for the disk (the
    // directory and inode blocks of a cold store), so several in flight keep it busy.
    std::atomic<size_t> next{0}, done{0};
    std::mutex mu;
    SweepStats total;
    Status first;
    auto work = [&] {
      SweepStats mine;
      for (size_t i; (i = next.fetch_add(1)) < subdirs.size();) {
        Status st = o.stop && o.stop() ? Status::Cancelled("garbage collection stopped")
                                       : SweepSubdir(dir_ + "/" + subdirs[i], o, &mine);
        if (!st.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first.ok()) first = st;
          next = subdirs.size();  // stop everyone
          break;
        }
        size_t n = ++done;
        if (o.progress && (n % 256 == 0 || n == subdirs.size())) {
          std::lock_guard<std::mutex> lock(mu);
          o.progress(n, subdirs.size());
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      total.chunks += mine.chunks;
      total.referenced += mine.referenced;
      total.recent += mine.recent;
      total.recent_bytes += mine.recent_bytes;
      total.removed += mine.removed;
      total.removed_bytes += mine.removed_bytes;
      total.temporary_removed += mine.temporary_removed;
      total.temporary_bytes += mine.temporary_bytes;
    };
    std::vector<std::thread> threads;
    const int n = std::max(1, o.threads);
    for (int t = 1; t < n; ++t) threads.emplace_back(work);
    work();
    for (auto& t : threads) t.join();
    if (!first.ok()) return first;
    return total;
  }

 private:
  std::string SubdirOf(const ChunkId& id) const { return dir_ + "/" + id.Hex().substr(0, 4); }

  // A backup's claim on a stored chunk (docs/gc.md): the file's time is set to now, under a
  // shared lock of its directory, so garbage collection (which checks the time and deletes
  // under the exclusive lock) either sees the new time or has deleted the file before, and
  // then the claim finds it missing. False when the chunk is not stored.
  Result<bool> Claim(const ChunkId& id) {
    const std::string hex = id.Hex();
    const std::string subdir = dir_ + "/" + hex.substr(0, 4);
    Fd dir(::open(subdir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) {
      if (errno == ENOENT) return false;
      return Status::FromErrno("open chunk directory " + subdir, errno);
    }
    while (::flock(dir.get(), LOCK_SH) != 0) {
      if (errno != EINTR) return Status::FromErrno("lock chunk directory " + subdir, errno);
    }
    if (::utimensat(dir.get(), hex.c_str(), nullptr, 0) == 0) return true;
    if (errno == ENOENT) return false;
    if (errno == EPERM || errno == EACCES) {
      // Only backups claim; one that may not would depend on a chunk GC can remove.
      return Status::FailedPrecondition(
          "cannot claim chunk " + subdir + "/" + hex + " (uid " + std::to_string(::getuid()) +
          "): every user who backs up into this datastore must be able to write its chunk "
          "files; run offhost as the datastore's owner");
    }
    return Status::FromErrno("claim chunk " + subdir + "/" + hex, errno);
  }

  Result<std::vector<std::string>> ListSubdirs() {
    DIR* top = ::opendir(dir_.c_str());
    if (!top) return Status::FromErrno("open chunk directory " + dir_, errno);
    std::vector<std::string> subdirs;
    while (dirent* e = ::readdir(top)) {
      if (std::strlen(e->d_name) == 4 && IsHexName(e->d_name, 4)) subdirs.push_back(e->d_name);
    }
    ::closedir(top);
    std::sort(subdirs.begin(), subdirs.end());
    return subdirs;
  }

  // One chunk directory. Its entries are read and the referenced chunks set aside without a
  // lock (a backup may add files meanwhile: they are new, hence kept); only when something
  // may go is the exclusive lock taken, and each candidate's time is read again under it.
  Status SweepSubdir(const std::string& path, const SweepOptions& o, SweepStats* stats) {
    std::vector<std::string> candidates;
    {
      DIR* d = ::opendir(path.c_str());
      if (!d) return Status::FromErrno("open chunk directory " + path, errno);
      while (dirent* e = ::readdir(d)) {
        size_t len = std::strlen(e->d_name);
        if (len == 64 && IsHexName(e->d_name, 64)) {
          ++stats->chunks;
          auto id = ChunkId::FromHex(e->d_name);
          if (id && o.referenced(*id)) {
            ++stats->referenced;
            continue;
          }
          candidates.emplace_back(e->d_name);
        } else if (len > 69 && std::strstr(e->d_name, ".tmp.") == e->d_name + 64) {
          candidates.emplace_back(e->d_name);  // NAME.tmp.PID.N of a writer
        }
      }
      ::closedir(d);
    }
    if (candidates.empty()) return Status::OK();
    Fd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) return Status::FromErrno("open chunk directory " + path, errno);
    if (!o.dry_run) {
      while (::flock(dir.get(), LOCK_EX) != 0) {
        if (errno != EINTR) return Status::FromErrno("lock chunk directory " + path, errno);
      }
    }
    for (const std::string& name : candidates) {
      struct stat st;
      if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // renamed into place, or removed by another GC
        return Status::FromErrno("stat " + path + "/" + name, errno);
      }
      const int64_t mtime = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
      const bool chunk = name.size() == 64;
      if (mtime >= o.cutoff_ns || !S_ISREG(st.st_mode)) {
        if (chunk) {
          ++stats->recent;
          stats->recent_bytes += static_cast<uint64_t>(st.st_size);
        }
        continue;
      }
      // A temporary file of a writer on this host that still runs is its own.
      if (!chunk && WriterAlive(name)) continue;
      if (!o.dry_run) {
        if (chunk && o.before_delete) {
          if (auto id = ChunkId::FromHex(name)) o.before_delete(*id);
        }
        if (::unlinkat(dir.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
          return Status::FromErrno("remove " + path + "/" + name, errno);
        }
      }
      if (chunk) {
        ++stats->removed;
        stats->removed_bytes += static_cast<uint64_t>(st.st_size);
      } else {
        ++stats->temporary_removed;
        stats->temporary_bytes += static_cast<uint64_t>(st.st_size);
      }
    }
    return Status::OK();  // closing `dir` releases the lock
  }

  // NAME.tmp.PID.N: whether process PID exists here (on shared storage it may be another
  // host's; such files go by their time alone).
  static bool WriterAlive(const std::string& name) {
    long pid = std::strtol(name.c_str() + 69, nullptr, 10);
    return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
  }

  Status EnsureSubdir(const std::string& subdir) {
    if (::mkdir(subdir.c_str(), 0755) == 0) {
      MarkDirty(dir_);  // the new directory entry must survive a crash too
      return Status::OK();
    }
    if (errno == EEXIST) return Status::OK();
    return Status::FromErrno("create chunk directory " + subdir, errno);
  }

  Status WriteChunkFile(const std::string& tmp, std::span<const char> encoded) {
    if (direct_.load(std::memory_order_relaxed)) {
      Result<bool> written = WriteFileDirect(tmp, encoded);
      if (!written.ok() || *written) return written.status();
      direct_ = false;  // this file system has no O_DIRECT: buffered writes from now on
    }
    return WriteFileBuffered(tmp, encoded);
  }

  // Makes every pending chunk durable, then gives it its name.
  Status Flush() {
    std::lock_guard<std::mutex> flushing(flush_mu_);
    std::vector<std::pair<ChunkId, PendingChunk>> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.assign(pending_.begin(), pending_.end());
      pending_bytes_ = 0;
    }
    if (batch.empty()) return Status::OK();
    std::vector<std::string> tmps;
    for (const auto& [id, c] : batch) {
      if (c.sync_errno != 0) return Status::FromErrno("fsync " + c.tmp, c.sync_errno);
      if (!c.synced) tmps.push_back(c.tmp);
    }
    OFFHOST_RETURN_IF_ERROR(SyncFiles(tmps));
    for (const auto& [id, c] : batch) {
      OFFHOST_RETURN_IF_ERROR(Name(id, c));
      std::lock_guard<std::mutex> lock(mu_);
      dirty_.insert(c.subdir);
      pending_.erase(id);
    }
    return Status::OK();
  }

  // Makes new chunk files durable as they come, while the backup goes on reading: the commit
  // (Sync) then finds them done and only names them. A file it could not open is left to the
  // flush; one whose fsync failed fails the flush.
  void SyncerLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      to_sync_cv_.wait(lock, [&] { return stop_syncer_ || !to_sync_.empty(); });
      if (stop_syncer_) return;
      ChunkId id = to_sync_.front();
      to_sync_.pop_front();
      auto it = pending_.find(id);
      if (it == pending_.end() || it->second.synced) continue;  // flushed meanwhile
      std::string tmp = it->second.tmp;
      lock.unlock();
      Fd fd(::open(tmp.c_str(), O_RDONLY | O_CLOEXEC));
      int err = fd.get() < 0 ? -1 : ::fsync(fd.get()) == 0 ? 0 : errno;
      lock.lock();
      it = pending_.find(id);
      if (it == pending_.end() || it->second.tmp != tmp || err < 0) continue;
      it->second.synced = err == 0;
      it->second.sync_errno = err;
    }
  }

  // Gives a durable temporary chunk file its name, never replacing a file of that name:
  // whoever names it first wins (another process, or another thread here, wrote the same
  // bytes). The winner's copy keeps the time its writer gave it, which may be older than this
  // backup: it is claimed, or ours is named when garbage collection removed it meanwhile.
  Status Name(const ChunkId& id, const PendingChunk& c) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      OFFHOST_ASSIGN_OR_RETURN(bool named, NameNoReplace(c.tmp, c.path));
      if (named) return Status::OK();
      OFFHOST_ASSIGN_OR_RETURN(bool claimed, Claim(id));
      if (claimed) {
        ::unlink(c.tmp.c_str());
        return Status::OK();
      }
    }
    return Status::IOError("chunk " + c.path +
                           " kept appearing and disappearing while this backup named it; "
                           "check for a garbage collection run with --min-age 0");
  }

  // rename(2) that fails (false) instead of replacing an existing name. Where the file system
  // has no RENAME_NOREPLACE (NFS), link(2) then unlink(2), which refuses just as atomically; a
  // plain rename only where neither exists.
  static Result<bool> NameNoReplace(const std::string& from, const std::string& to) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
      return true;
    }
    if (errno == EEXIST) return false;
    if (errno != EINVAL && errno != ENOSYS) return Status::FromErrno("rename " + from, errno);
    if (::link(from.c_str(), to.c_str()) == 0) {
      ::unlink(from.c_str());
      return true;
    }
    if (errno == EEXIST) return false;
    if (errno != EPERM && errno != ENOTSUP && errno != EOPNOTSUPP) {
      return Status::FromErrno("link " + from + " to " + to, errno);
    }
    if (::rename(from.c_str(), to.c_str()) != 0) return Status::FromErrno("rename " + from, errno);
    return true;
  }

  void MarkDirty(const std::string& d) {
    std::lock_guard<std::mutex> lock(mu_);
    dirty_.insert(d);
  }

  std::string dir_;
  // Per process, not per store: offhostd runs backups into one datastore at once, each with
  // its own store object, and NAME.tmp.PID.N must not be the same file for two of them.
  static inline std::atomic<uint64_t> counter_{0};
  std::atomic<bool> direct_{true};
  std::mutex flush_mu_;  // one flush at a time
  std::mutex mu_;
  std::set<std::string> dirty_;
  std::unordered_map<ChunkId, PendingChunk, ChunkIdHash> pending_;
  std::deque<ChunkId> to_sync_;  // pending_ entries for the syncer, oldest first
  std::condition_variable to_sync_cv_;
  bool stop_syncer_ = false;
  std::thread syncer_;  // started by the first Put
  size_t pending_bytes_ = 0;
};

}  // namespace

Result<std::unique_ptr<ChunkStore>> OpenLocalChunkStore(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::NotFound("chunk directory " + dir + " is missing");
  }
  return std::unique_ptr<ChunkStore>(new LocalChunkStore(dir));
}

}  // namespace offhost::storage
