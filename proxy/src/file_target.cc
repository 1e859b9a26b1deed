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

Result<std::unique_ptr<BlockDevice>> CreateFileTarget(const std::string& path, uint64_t size,
                                                      bool overwrite, bool* is_zeroed) {
  struct stat st;
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && !overwrite) {
    return Status::AlreadyExists("restore target " + path +
                                 " already exists; remove it or pass --force to overwrite it");
  }
  if (exists && S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("restore target " + path + " is a directory; give a file name");
  }
  bool block = exists && S_ISBLK(st.st_mode);
  int flags = O_WRONLY | O_CLOEXEC | (block ? 0 : O_CREAT | O_TRUNC) | (exists ? 0 : O_EXCL);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return Status::FromErrno("create restore target " + path, errno);
  uint64_t target_size = size;
  if (!block && ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno("size restore target " + path, err);
  }
  if (block) {
    off_t end = ::lseek(fd, 0, SEEK_END);
    target_size = end < 0 ? 0 : static_cast<uint64_t>(end);
  }
  *is_zeroed = !block;  // a fresh sparse file reads as zeroes; a device must be written
  return std::unique_ptr<BlockDevice>(new FileTarget(fd, path, target_size));
}

}  // namespace offhost::proxy
