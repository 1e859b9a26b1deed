// Snapshots and backup groups as offhost.v1 shows them (catalog.proto), from the datastore's
// snapshot records.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "offhost/storage/datastore.h"
#include "offhost/v1/catalog.pb.h"

namespace offhost::grpcapi {

// "nbd" → DRIVER_NBD, ...; DRIVER_UNSPECIFIED for a driver this API does not name yet.
v1::Driver DriverOf(const std::string& driver);

// The basic view of `snap`, stored in datastore `ds`; `cataloged`: it has a file catalog.
void FillSnapshot(const std::string& ds, const storage::SnapshotRecord& snap, bool cataloged,
                  v1::Snapshot* out);
// SNAPSHOT_VIEW_FULL's additions: the stored VM configuration and the catalog's volumes.
Status FillSnapshotFull(storage::Datastore& datastore, const storage::SnapshotRecord& snap,
                        const std::optional<storage::CatalogRecord>& catalog, v1::Snapshot* out);

// One VM's snapshots in `ds`, oldest first (as Datastore::ListSnapshots gives them).
void FillBackupGroup(const std::string& ds, const std::vector<storage::SnapshotRecord>& snaps,
                     v1::BackupGroup* out);

}  // namespace offhost::grpcapi
