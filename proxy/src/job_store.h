// Where JobEngine keeps its jobs: one RocksDB database (STATE_DIR/jobs.rocksdb), one key per
// job ("job/{id}") holding the whole record as JSON, rewritten at each change. Private to
// proxy/.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <string>
#include <vector>

#include "offhost/proxy/job_engine.h"

namespace offhost::proxy {

class JobStore {
 public:
  // Creates `state_dir` (mode 0700: job specs name sources and paths) when missing.
  static Result<std::unique_ptr<JobStore>> Open(const std::string& state_dir);

  // `synced`: state changes are made durable before they are reported; progress need not be.
  Status Put(const JobRecord& job, bool synced);
  Status Delete(const std::string& id);
  Result<std::vector<JobRecord>> LoadAll();

 private:
  explicit JobStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
  std::unique_ptr<rocksdb::DB> db_;
};

// The JSON form (exposed for tests). Opaque blobs (spec, result) are hex-encoded.
std::string EncodeJob(const JobRecord& job);
Result<JobRecord> DecodeJob(const std::string& text);

}  // namespace offhost::proxy
