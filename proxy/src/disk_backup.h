// One disk's backup pipeline (private to proxy/).
#pragma once

#include "offhost/proxy/backup.h"

namespace offhost::proxy {

Result<storage::DiskRecord> BackupOneDisk(storage::Datastore& ds, BlockDevice& device,
                                          storage::DiskManifestWriter& manifest,
                                          const BackupOptions& options);

}  // namespace offhost::proxy
