// restore-file against offhostd: one regular file fetched with RestoreService.DownloadFiles.
#pragma once

#include <cstdint>
#include <string>

#include "daemon_client.h"

namespace offhost::cli {

// Writes the guest file `path` of `snapshot` (a resource name) into the folder `to_dir`
// under its own name, never outside it, replacing an existing file only with `overwrite`.
// The bytes are checked against the trailer's SHA-256 before the file is published. Returns
// the bytes written; on failure the error is already reported and `*exit` set.
Result<uint64_t> DownloadFile(const DaemonClient& client, const std::string& snapshot,
                              const std::string& path, const std::string& to_dir, bool overwrite,
                              int* exit);

}  // namespace offhost::cli
