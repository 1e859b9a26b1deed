// A file (or block device) as a restore target.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "offhost/proxy/restore.h"

namespace offhost::proxy {
namespace {

class FileTarget final : public BlockDevice {
 public:
  FileTarget(int fd, std::string path, uint64_t size) : fd_(fd), path_(std::move(path)), size_(size) {}
  ~FileTarget() override { ::close(fd_); }

  uint64_t size() const override { return size_; }
  std::string description() const override { return "file " + path_; }
  bool writable() const override { return true; }
  Status Read(std::span<const ReadRequest>) override {
    return Status::NotSupported("restore target " + path_ + " is write-only");
  }
  Status Write(uint64_t offset, std::span<const char> data) override {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done,
                           static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno("write " + path_ + " at offset " + std::to_string(offset), errno);
      done += static_cast<size_t>(n);
    }
    return Status::OK();
  }
  Status Flush() override {
    if (::fsync(fd_) != 0) return Status::FromErrno("fsync " + path_, errno);
    return Status::OK();
  }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
};

}  // namespace

Result<std::unique_ptr<FileRestoreTarget>> FileRestoreTarget::Create(const std::string& path,
                                                                     uint64_t size,
                                                                     bool overwrite) {
  struct stat st;
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && !overwrite) {
    return Status::AlreadyExists("restore target " + path +
                                 " already exists; remove it or pass --force to overwrite it");
  }
  if (exists && S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("restore target " + path + " is a directory; give a file name");
  }
  std::unique_ptr<FileRestoreTarget> t(new FileRestoreTarget());
  t->path_ = path;
  bool block = exists && S_ISBLK(st.st_mode);
  // A stale PATH.partial is an earlier interrupted restore of ours: start it again.
  t->partial_ = block ? path : path + ".partial";
  int flags = O_WRONLY | O_CLOEXEC | (block ? 0 : O_CREAT | O_TRUNC);
  int fd = ::open(t->partial_.c_str(), flags, 0644);
  if (fd < 0) return Status::FromErrno("create restore target " + t->partial_, errno);
  uint64_t target_size = size;
  if (!block && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(t->partial_.c_str());
    return Status::FromErrno("size restore target " + t->partial_, err);
  }
  if (block) {
    off_t end = ::lseek(fd, 0, SEEK_END);
    target_size = end < 0 ? 0 : static_cast<uint64_t>(end);
  }
  t->zeroed_ = !block;  // a fresh sparse file reads as zeroes; a device must be written
  t->device_.reset(new FileTarget(fd, t->partial_, target_size));
  return t;
}

FileRestoreTarget::~FileRestoreTarget() {
  device_.reset();
  if (!published_ && partial_ != path_) ::unlink(partial_.c_str());
}

Status FileRestoreTarget::Publish() {
  OFFHOST_RETURN_IF_ERROR(device_->Flush());
  device_.reset();
  if (partial_ != path_ && ::rename(partial_.c_str(), path_.c_str()) != 0) {
    return Status::FromErrno("rename " + partial_ + " to " + path_, errno);
  }
  published_ = true;
  return Status::OK();
}

}  // namespace offhost::proxy
