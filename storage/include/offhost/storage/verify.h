// Datastore verification: re-reads every chunk, proves it against its SHA-256 name, and maps
// each damaged or missing chunk to the snapshots, disks and offsets that use it; reads every
// folder tree of every snapshot's file catalog.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "offhost/common/status.h"
#include "offhost/storage/chunk_id.h"
#include "offhost/storage/datastore.h"

namespace offhost::storage {

struct ChunkUse {
  std::string vm;
  std::string snapshot;
  std::string disk;
  std::vector<uint64_t> offsets;  // disk offsets; the first few only
  uint64_t count = 0;             // how many times this disk uses the chunk
};

struct DamagedChunk {
  ChunkId id;
  std::string path;
  std::string reason;  // "missing", or what failed when decoding
  std::string moved_to;  // where a damaged chunk was moved aside (empty: not moved)
  std::vector<ChunkUse> uses;
};

// A snapshot whose file catalog cannot be read whole: its record, or a folder tree the record
// reaches, is missing from the index or does not decode. Its disks still restore.
struct DamagedCatalog {
  std::string vm;
  std::string snapshot;
  std::string tree;  // the damaged tree's id (hex); empty when the record itself is damaged
  std::string reason;
};

struct VerifyReport {
  uint64_t chunks_checked = 0;
  uint64_t bytes_checked = 0;  // stored (encoded) bytes read
  uint64_t snapshots_checked = 0;
  uint64_t catalog_trees_checked = 0;  // distinct trees, however many snapshots reach them
  std::vector<DamagedChunk> damaged;
  std::vector<DamagedCatalog> damaged_catalogs;
  bool ok() const { return damaged.empty() && damaged_catalogs.empty(); }
};

struct VerifyOptions {
  int threads = 0;  // 0 = one per core
  // Move damaged chunks aside (needs a writable datastore) so later backups store them again.
  bool quarantine = false;
  // Called now and then with (chunks checked, chunks total).
  std::function<void(uint64_t, uint64_t)> progress;
};

Result<VerifyReport> VerifyDatastore(Datastore& ds, const VerifyOptions& options);

}  // namespace offhost::storage
