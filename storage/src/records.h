// JSON encodings of records kept in the index and in the datastore's config file (private).
#pragma once

#include <nlohmann/json.hpp>

#include "offhost/storage/datastore.h"

namespace offhost::storage {

nlohmann::json ToJson(const SnapshotRecord& s);
Result<SnapshotRecord> SnapshotFromJson(const std::string& text, const std::string& key);
nlohmann::json ToJson(const DatastoreConfig& c);
Result<DatastoreConfig> ConfigFromJson(const std::string& text, const std::string& path);

std::string FormatUtc(int64_t unix_seconds);

}  // namespace offhost::storage
