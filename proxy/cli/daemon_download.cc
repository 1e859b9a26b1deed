#include "daemon_download.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>

#include "cli_util.h"
#include "offhost/v1/restore.grpc.pb.h"

namespace offhost::cli {
namespace {

// A new file in the target folder, removed unless published: a failed or damaged download
// never leaves a partial file under the real name.
class PartialFile {
 public:
  PartialFile(int dir_fd, std::string name)
      : dir_fd_(dir_fd), name_(std::move(name)), partial_("." + name_ + ".offhost-partial") {}
  ~PartialFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!published_) ::unlinkat(dir_fd_, partial_.c_str(), 0);
  }
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  Status Open() {
    ::unlinkat(dir_fd_, partial_.c_str(), 0);
    fd_ = ::openat(dir_fd_, partial_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   0600);
    return fd_ < 0 ? Status::IOError("cannot create " + partial_ + ": " + std::strerror(errno))
                   : Status::OK();
  }
  Status Write(const std::string& data, uint64_t offset) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n =
          ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) return Status::IOError("writing " + name_ + ": " + std::strerror(errno));
      done += static_cast<size_t>(n);
    }
    return Status::OK();
  }
  // Size, mode and times as in the guest, then the rename under the real name.
  Status Publish(const v1::FileInfo& f, bool overwrite) {
    if (::ftruncate(fd_, static_cast<off_t>(f.size_bytes())) != 0 ||
        ::fchmod(fd_, f.mode() & 07777) != 0) {
      return Status::IOError("finishing " + name_ + ": " + std::strerror(errno));
    }
    struct timespec times[2] = {{f.access_time().seconds(), f.access_time().nanos()},
                                {f.modify_time().seconds(), f.modify_time().nanos()}};
    ::futimens(fd_, times);
    if (::fsync(fd_) != 0) return Status::IOError("fsync " + name_ + ": " + std::strerror(errno));
    unsigned flags = overwrite ? 0 : RENAME_NOREPLACE;
    if (::renameat2(dir_fd_, partial_.c_str(), dir_fd_, name_.c_str(), flags) != 0) {
      return errno == EEXIST
                 ? Status::AlreadyExists(name_ +
                                         " exists in the target folder; "
                                         "--overwrite replaces it")
                 : Status::IOError("renaming to " + name_ + ": " + std::strerror(errno));
    }
    published_ = true;
    return Status::OK();
  }

 private:
  int dir_fd_;
  std::string name_, partial_;
  int fd_ = -1;
  bool published_ = false;
};

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

using DigestPtr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

// The name a guest file gets in the target folder: only a plain name, so a hostile guest
// cannot steer the write elsewhere.
Status CheckName(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return Status::InvalidArgument("refusing the guest file name '" + name +
                                   "': it would not stay inside --to");
  }
  return Status::OK();
}

}  // namespace

Result<uint64_t> DownloadFile(const DaemonClient& client, const std::string& snapshot,
                              const std::string& path, const std::string& to_dir, bool overwrite,
                              int* exit) {
  auto fail = [exit](const Status& st) -> Result<uint64_t> {
    *exit = ReportError(st);
    return st;
  };
  Fd dir{::open(to_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (dir.fd < 0) {
    return fail(Status::InvalidArgument("--to " + to_dir +
                                        " is not an existing folder: " + std::strerror(errno)));
  }
  auto stub = v1::RestoreService::NewStub(client.channel());
  v1::DownloadFilesRequest req;
  req.set_snapshot(snapshot);
  req.set_path(path);
  req.set_format(v1::DOWNLOAD_FORMAT_RAW);
  auto ctx = client.Context();
  auto reader = stub->DownloadFiles(ctx.get(), req);
  std::unique_ptr<PartialFile> out;
  v1::FileInfo file;
  DigestPtr sha(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(sha.get(), EVP_sha256(), nullptr);
  uint64_t bytes = 0;
  std::string want_sha;
  bool trailer = false;
  Status local;  // the first local failure; the stream is then cancelled
  v1::DownloadFilesResponse msg;
  while (local.ok() && reader->Read(&msg)) {
    if (msg.has_header()) {
      file = msg.header().file();
      local = CheckName(file.name());
      if (local.ok()) {
        out = std::make_unique<PartialFile>(dir.fd, file.name());
        local = out->Open();
      }
    } else if (msg.has_chunk() && out) {
      const auto& c = msg.chunk();
      EVP_DigestUpdate(sha.get(), c.data().data(), c.data().size());
      local = out->Write(c.data(), c.offset());
      bytes += c.data().size();
    } else if (msg.has_trailer()) {
      want_sha = msg.trailer().sha256();
      trailer = true;
    }
  }
  if (!local.ok()) ctx->TryCancel();
  grpc::Status st = reader->Finish();
  if (!local.ok()) return fail(local);
  if (!st.ok()) {
    *exit = ReportRpcError(st, *ctx, client);
    return Status::IOError("reported");
  }
  unsigned char got[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(sha.get(), got, &len);
  if (!out || !trailer || want_sha != std::string(reinterpret_cast<char*>(got), len)) {
    return fail(Status::Corruption("the download of " + path +
                                   " does not match the SHA-256 the daemon sent; nothing was "
                                   "written"));
  }
  Status published = out->Publish(file, overwrite);
  if (!published.ok()) return fail(published);
  return bytes;
}

}  // namespace offhost::cli
