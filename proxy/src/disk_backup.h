// One disk's backup pipeline (private to proxy/).
#pragma once

#include "offhost/proxy/backup.h"

namespace offhost::proxy {

// `previous` (may be null) is the same disk in the previous snapshot; when given, `device`
// must have a dirty map relative to it.
Result<storage::DiskRecord> BackupOneDisk(storage::Datastore& ds, BlockDevice& device,
                                          storage::DiskManifestWriter& manifest,
                                          const BackupOptions& options,
                                          std::unique_ptr<storage::ManifestReader> previous);

}  // namespace offhost::proxy
