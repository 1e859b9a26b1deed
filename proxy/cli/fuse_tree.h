// The guest files of a stored backup as a read-only FUSE file system (libfuse 3), for
// `offhost mount`: the volumes at the top ("vda1", "vda2"), then each file system's tree with
// the guest's types, sizes, modes, owners, times and symlink targets. Nothing can be written
// (the mount is read-only: EROFS).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "file_read_cache.h"
#include "offhost/common/status.h"
#include "offhost/mount/guest_files.h"

namespace offhost::cli {

struct FuseMountOptions {
  std::string mountpoint;  // an existing, empty directory
  std::string fsname;      // the source shown in /proc/mounts, e.g. "offhost:web01@2026-11-25T..."
  std::string root = "/";  // the guest folder shown at the mount point: "/" (the volumes) or
                           // a folder inside one, e.g. "/vda1/home"
  int64_t root_time = 0;   // unix seconds shown as the times of "/", which has none of its own
  // Let other users than the one mounting see the files. The kernel then checks the guest's
  // modes and owners against the host user reading (default_permissions), so a host user
  // whose uid matches a guest user reads what that guest user could.
  bool allow_other = false;
  FileReadCacheOptions cache;
};

// Mounts `files` at options.mountpoint and answers the kernel, one request at a time, until
// the file system is unmounted (fusermount3 -u, umount) or SIGINT, SIGTERM or SIGHUP arrive;
// then unmounts it. `mounted` runs once the mount is in place, before the first request.
// libfuse prints its own reasons when mounting fails.
Status ServeFuse(mount::GuestFiles& files, const FuseMountOptions& options,
                 const std::function<void()>& mounted);

}  // namespace offhost::cli
