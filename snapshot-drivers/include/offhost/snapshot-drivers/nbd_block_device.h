// NBD transport: a BlockDevice over libnbd for nbd://, nbds://, nbd+unix:// and nbds+unix://
// URIs. Reads keep several requests in flight, sized to the server's block-size constraints;
// the `base:allocation` context tells holes and zero extents, which are never read.
#pragma once

#include <memory>
#include <string>

#include "offhost/common/block_device.h"

namespace offhost::snapshot_drivers {

struct NbdOpenOptions {
  // Restore targets only. A source disk is always opened read-only.
  bool writable = false;
  // Requests kept in flight at once by Read(). An incremental reads a pack's worth of
  // scattered 64 KiB runs per batch: all of them in flight keeps the server busy (the
  // 4 GiB/1% benchmark's data phase ~8 ms shorter than with 16).
  int max_in_flight = 64;
  // Upper bound on one request; lowered further to the server's advertised maximum.
  uint32_t max_request = 4u * 1024 * 1024;
  // Changed-block tracking: a dirty-bitmap meta context such as "qemu:dirty-bitmap:backup-vda".
  // Opening fails when the export does not offer it.
  std::string dirty_bitmap;
  // Seconds a read or block-status request may wait for the server's answer before the
  // device fails (Unavailable, naming the export) instead of hanging the backup: a server
  // that stopped answering without closing the connection. 0: wait forever. Default 300.
  int timeout_seconds = 300;
};

Result<std::unique_ptr<BlockDevice>> OpenNbd(const std::string& uri,
                                             const NbdOpenOptions& options = {});

// True for the URI schemes OpenNbd accepts.
bool IsNbdUri(const std::string& uri);

// The URI with any password replaced by "***", fit for logs and listings.
std::string MaskUri(const std::string& uri);

}  // namespace offhost::snapshot_drivers
