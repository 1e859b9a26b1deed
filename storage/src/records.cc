#include "records.h"

#include <ctime>

namespace offhost::storage {

using nlohmann::json;

std::string FormatUtc(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json ToJson(const SnapshotRecord& s) {
  json disks = json::array();
  for (const auto& d : s.disks) {
    disks.push_back({{"name", d.name},
                     {"source", d.source},
                     {"size", d.size},
                     {"chunks", d.chunks},
                     {"new_chunks", d.new_chunks},
                     {"bytes_read", d.bytes_read},
                     {"new_bytes", d.new_bytes},
                     {"zero_bytes", d.zero_bytes},
                     {"unallocated_bytes", d.unallocated_bytes},
                     {"incremental", d.incremental},
                     {"full_reason", d.full_reason},
                     {"dirty_bytes", d.dirty_bytes},
                     {"reused_bytes", d.reused_bytes},
                     {"identity", d.identity}});
  }
  return {{"vm", s.vm},
          {"id", s.id},
          {"started", s.started},
          {"finished", s.finished},
          {"disks", disks},
          {"vm_uuid", s.meta.vm_uuid},
          {"driver", s.meta.driver},
          {"consistency", s.meta.consistency},
          {"consistency_reason", s.meta.consistency_reason},
          {"checkpoint", s.meta.checkpoint},
          {"parent", s.meta.parent}};
}

Result<SnapshotRecord> SnapshotFromJson(const std::string& text, const std::string& key) {
  try {
    json j = json::parse(text);
    SnapshotRecord s;
    s.vm = j.at("vm").get<std::string>();
    s.id = j.at("id").get<std::string>();
    s.started = j.at("started").get<int64_t>();
    s.finished = j.at("finished").get<int64_t>();
    for (const auto& d : j.at("disks")) {
      DiskRecord r;
      r.name = d.at("name").get<std::string>();
      r.source = d.value("source", "");
      r.size = d.at("size").get<uint64_t>();
      r.chunks = d.value("chunks", uint64_t{0});
      r.new_chunks = d.value("new_chunks", uint64_t{0});
      r.bytes_read = d.value("bytes_read", uint64_t{0});
      r.new_bytes = d.value("new_bytes", uint64_t{0});
      r.zero_bytes = d.value("zero_bytes", uint64_t{0});
      r.unallocated_bytes = d.value("unallocated_bytes", uint64_t{0});
      r.incremental = d.value("incremental", false);
      r.full_reason = d.value("full_reason", "");
      r.dirty_bytes = d.value("dirty_bytes", uint64_t{0});
      r.reused_bytes = d.value("reused_bytes", uint64_t{0});
      r.identity = d.value("identity", "");
      s.disks.push_back(std::move(r));
    }
    s.meta.vm_uuid = j.value("vm_uuid", "");
    s.meta.driver = j.value("driver", "");
    s.meta.consistency = j.value("consistency", "crash");
    s.meta.consistency_reason = j.value("consistency_reason", "");
    s.meta.checkpoint = j.value("checkpoint", "");
    s.meta.parent = j.value("parent", "");
    return s;
  } catch (const json::exception& e) {
    return Status::Corruption("index record " + key + " is not a valid snapshot: " + e.what());
  }
}

json ToJson(const DatastoreConfig& c) {
  return {{"format", "offhost-datastore"}, {"version", c.version}, {"uuid", c.uuid},
          {"created", c.created},          {"chunker", c.chunker}, {"chunk_size", c.chunk_size},
          {"zstd_level", c.zstd_level}};
}

Result<DatastoreConfig> ConfigFromJson(const std::string& text, const std::string& path) {
  try {
    json j = json::parse(text);
    if (j.at("format").get<std::string>() != "offhost-datastore") {
      return Status::InvalidArgument(path + " is not an offhost datastore config");
    }
    const int version = j.at("version").get<int>();
    if (version < 1 || version > DatastoreConfig::kDatastoreVersion) {
      return Status::NotSupported(path + " has datastore format version " +
                                  std::to_string(version) + "; this offhost reads versions 1-" +
                                  std::to_string(DatastoreConfig::kDatastoreVersion) +
                                  " — upgrade offhost");
    }
    DatastoreConfig c;
    c.version = version;
    c.uuid = j.at("uuid").get<std::string>();
    c.created = j.at("created").get<int64_t>();
    c.chunker = j.at("chunker").get<std::string>();
    c.chunk_size = j.at("chunk_size").get<uint32_t>();
    c.zstd_level = j.at("zstd_level").get<int>();
    return c;
  } catch (const json::exception& e) {
    return Status::Corruption(path + " is damaged: " + e.what());
  }
}

}  // namespace offhost::storage
