// A snapshot's file, symlink or folder as a POSIX pax archive, for DownloadFiles
// (restore.proto "Tar format"). The archive is laid out before its first byte is sent — every
// header built, every file's place known — so its length goes in the DownloadHeader and any
// range of it can be sent again byte for byte: a resumed download fits the broken one.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "offhost/mount/guest_files.h"

namespace offhost::grpcapi {

// Receives the archive's bytes in order as (archive offset, bytes); an error stops the send.
using TarSink = std::function<Status(uint64_t, std::span<const char>)>;

class TarArchive {
 public:
  // Walks `path` (depth first, names sorted; paths relative to its parent). Devices, FIFOs,
  // sockets and unsafe names are left out and listed in skipped().
  static Result<TarArchive> Plan(mount::GuestFiles& files, const std::string& path);

  uint64_t size() const { return size_; }
  const std::vector<std::string>& skipped() const { return skipped_; }

  // Hands `sink` the archive's bytes from `begin` on, in pieces that may start before
  // `begin` (the sink trims them); only the files that reach past `begin` are read.
  Status Send(mount::GuestFiles& files, uint64_t begin, const TarSink& sink) const;

 private:
  // Header blocks at `offset`, then for a regular file its content and zeroes to a block.
  struct Piece {
    uint64_t offset = 0;
    std::string headers;
    std::string guest_path;  // a regular file; empty for anything else
    uint64_t content = 0;    // the file's size
  };
  void Add(const std::string& name, const mount::FileInfo& info, const std::string& guest_path);
  Status Walk(mount::GuestFiles& files, const std::string& name, const mount::FileInfo& info,
              const std::string& guest_path);
  static Status SendFile(mount::GuestFiles& files, const Piece& piece, uint64_t content_offset,
                         const TarSink& sink);

  std::vector<Piece> pieces_;
  std::vector<std::string> skipped_;
  std::unordered_map<uint64_t, std::string> first_name_;  // inode → its first name in the archive
  uint64_t size_ = 0;
};

}  // namespace offhost::grpcapi
