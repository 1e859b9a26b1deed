// Lease files, one per snapshot being read: DIR/readers/<vm>@<id>, empty. Readers hold a
// shared flock() on one, a prune an exclusive one (non-blocking: a snapshot being read is
// kept). Whoever holds a file exclusively may remove it, and every holder checks after
// locking that the file it locked is still the one at that name (else it locks again): a
// lock on a removed file protects nothing.
#include "offhost/storage/read_lease.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "prune_leases.h"

namespace offhost::storage {
namespace {

constexpr char kReadersDir[] = "/readers";
constexpr int kAttempts = 100;  // a file removed under us each time: something is very wrong

// flock() that waits, and goes on after a signal.
int FlockRetry(int fd, int op) {
  int rc;
  do {
    rc = ::flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

// Whether `fd` is still the file named `path`.
bool StillNamed(int fd, const std::string& path) {
  struct stat by_fd, by_name;
  return ::fstat(fd, &by_fd) == 0 && ::stat(path.c_str(), &by_name) == 0 &&
         by_fd.st_dev == by_name.st_dev && by_fd.st_ino == by_name.st_ino;
}

// Removes `path` if `fd` (locked exclusively) is still that file.
void RemoveIfStillNamed(int fd, const std::string& path) {
  if (StillNamed(fd, path)) ::unlink(path.c_str());
}

enum class Locked { kYes, kBusy, kNoFile };

// Opens (creating it where allowed) and locks the lease file `path`, and checks it is still
// named so. kNoFile: it cannot be opened (a reader without write access, say).
Result<Locked> LockLeaseFile(const std::string& path, int op, int* fd_out) {
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Locked::kNoFile;
    if (FlockRetry(fd, op) != 0) {
      int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) return Locked::kBusy;
      return Status::FromErrno("lock " + path, err);
    }
    if (StillNamed(fd, path)) {
      *fd_out = fd;
      return Locked::kYes;
    }
    ::close(fd);  // removed by its last holder meanwhile: lock the new one
  }
  return Status::IOError("lease file " + path + " kept being replaced while it was locked");
}

}  // namespace

std::string ReadLeasePath(const std::string& datastore_dir, const SnapshotRecord& snap) {
  return datastore_dir + kReadersDir + "/" + snap.vm + "@" + snap.id;
}

Result<std::unique_ptr<SnapshotReadLease>> SnapshotReadLease::Take(Datastore& ds,
                                                                   const SnapshotRecord& snap) {
  OFFHOST_RETURN_IF_ERROR(ValidateName("VM", snap.vm));
  ::mkdir((ds.dir() + kReadersDir).c_str(), 0755);  // exists, or the open says why not
  const std::string path = ReadLeasePath(ds.dir(), snap);
  int fd = -1;
  OFFHOST_RETURN_IF_ERROR(LockLeaseFile(path, LOCK_SH, &fd).status());
  std::unique_ptr<SnapshotReadLease> lease(new SnapshotReadLease(path, fd));
  // A prune that removed the snapshot held the lease until then: look again now.
  auto still = ds.FindSnapshot(snap.vm, snap.id);
  if (!still.ok()) {
    if (still.status().code() == StatusCode::kNotFound) {
      return Status::NotFound("snapshot " + snap.vm + "@" + snap.id +
                              " was removed (by a prune) before it could be read; list the "
                              "snapshots with `offhost snapshots` and pick another");
    }
    return still.status();
  }
  return lease;
}

SnapshotReadLease::~SnapshotReadLease() {
  if (fd_ < 0) return;
  // The last reader removes the file, so reading leaves nothing behind. Not atomic: a prune
  // may take the file in between, and then removes it itself.
  if (FlockRetry(fd_, LOCK_EX | LOCK_NB) == 0) RemoveIfStillNamed(fd_, path_);
  ::close(fd_);
}

Result<SnapshotPruneLeases> SnapshotPruneLeases::Take(const std::string& datastore_dir,
                                                      const std::vector<SnapshotRecord>& snaps,
                                                      std::vector<SnapshotRecord>* free,
                                                      std::vector<SnapshotRecord>* in_use) {
  SnapshotPruneLeases leases;
  if (snaps.empty()) return leases;
  const std::string dir = datastore_dir + kReadersDir;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Status::FromErrno("create " + dir, errno)
        .WithContext("the folder where readers of snapshots hold their leases");
  }
  for (const auto& snap : snaps) {
    const std::string path = ReadLeasePath(datastore_dir, snap);
    int fd = -1;
    OFFHOST_ASSIGN_OR_RETURN(Locked locked, LockLeaseFile(path, LOCK_EX | LOCK_NB, &fd));
    if (locked == Locked::kNoFile) return Status::FromErrno("open " + path, errno);
    if (locked == Locked::kBusy) {
      in_use->push_back(snap);
      continue;
    }
    leases.held_.emplace_back(path, fd);
    free->push_back(snap);
  }
  return leases;
}

SnapshotPruneLeases::SnapshotPruneLeases(SnapshotPruneLeases&& other) noexcept
    : held_(std::move(other.held_)) {
  other.held_.clear();
}

void SnapshotPruneLeases::RemoveFiles() {
  for (const auto& [path, fd] : held_) RemoveIfStillNamed(fd, path);
}

SnapshotPruneLeases::~SnapshotPruneLeases() {
  for (const auto& held : held_) ::close(held.second);
}

}  // namespace offhost::storage
