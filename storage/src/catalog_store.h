// Catalog staging for SnapshotWriter (private to storage/).
#pragma once

#include <optional>
#include <string>

#include <rocksdb/write_batch.h>

#include "offhost/storage/catalog.h"

namespace offhost::storage {

std::string CatalogStagingPath(const std::string& staging_dir);

// A catalog record (`f/` value); `where` (vm@snapshot) names it in the error.
Result<CatalogRecord> CatalogFromJson(const std::string& text, const std::string& where);

// Adds the staged trees (`staged`: the staging file's bytes) and the catalog record to the
// commit batch of snapshot vm@id.
Status AddStagedCatalog(const std::string& staging_dir, const std::string& staged,
                        const std::optional<CatalogRecord>& catalog, const std::string& vm,
                        const std::string& id, rocksdb::WriteBatch* batch);

}  // namespace offhost::storage
