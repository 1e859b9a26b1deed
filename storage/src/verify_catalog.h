// The catalog part of verify (private to storage/).
#pragma once

#include <vector>

#include "offhost/storage/verify.h"

namespace offhost::storage {

// Reads the file catalog of every snapshot in `snapshots` from one view of the index: its
// record and every folder tree the record reaches (trees shared by snapshots are read once).
// A snapshot pruned before the view was taken has no record and is skipped.
Status CheckCatalogs(Datastore& ds, const std::vector<SnapshotRecord>& snapshots,
                     VerifyReport* report);

}  // namespace offhost::storage
