// Browsing a snapshot's files for ListFiles and GetFileInfo: from its catalog (reads the index
// only) or from the backup itself (partition tables, LVM and file systems read from the stored
// chunks, as `offhost ls` does). Paths are those of `offhost ls`: "/" holds the volumes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "offhost/storage/datastore.h"
#include "offhost/v1/common.pb.h"

namespace offhost::grpcapi {

// What to browse: a snapshot and, when it has one, its catalog.
struct BrowseTarget {
  storage::Datastore* datastore;
  const storage::SnapshotRecord* snapshot;
  storage::CatalogReader* reader;         // set with `catalog`
  const storage::CatalogRecord* catalog;  // null: read the backup
};

// The entries of the folder `path`, ordered by name; a file's path gives that one file.
// NotFound for a path that does not exist; FailedPrecondition for a volume that cannot be read.
Result<std::vector<v1::FileInfo>> ListEntries(const BrowseTarget& target, const std::string& path);
// The entry `path` names ("/" is the root folder; "/vda1" a FILE_TYPE_VOLUME).
Result<v1::FileInfo> StatEntry(const BrowseTarget& target, const std::string& path);

}  // namespace offhost::grpcapi
