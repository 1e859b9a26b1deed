#include "job_store.h"

#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

namespace offhost::proxy {
namespace {

constexpr char kKeyPrefix[] = "job/";

Status FromRocksStatus(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return Status::Unavailable(what + ": " + s.ToString() +
                               " (is another offhostd using the same server.state_dir?)");
  }
  return Status::IOError(what + ": " + s.ToString());
}

std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string Unhex(const std::string& hex) {
  auto value = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(value(hex[2 * i]) << 4 | value(hex[2 * i + 1]));
  }
  return out;
}

nlohmann::json ProgressJson(const JobProgress& p) {
  return {{"total", p.total_bytes}, {"done", p.done_bytes},   {"read", p.bytes_read},
          {"new", p.new_bytes},     {"items", p.total_items}, {"done_items", p.done_items},
          {"at", p.update_ms}};
}

JobProgress ProgressFrom(const nlohmann::json& j) {
  JobProgress p;
  p.total_bytes = j.at("total");
  p.done_bytes = j.at("done");
  p.bytes_read = j.at("read");
  p.new_bytes = j.at("new");
  p.total_items = j.at("items");
  p.done_items = j.at("done_items");
  p.update_ms = j.at("at");
  return p;
}

nlohmann::json EntryJson(const TimelineEntry& e) {
  return {{"at", e.time_ms}, {"what", e.what}, {"detail", e.detail}};
}

TimelineEntry EntryFrom(const nlohmann::json& j) {
  return {j.at("at").get<int64_t>(), j.at("what").get<std::string>(),
          j.at("detail").get<std::string>()};
}

nlohmann::json EventJson(const JobEvent& e) {
  nlohmann::json j = {{"seq", e.sequence}, {"at", e.time_ms}, {"kind", static_cast<int>(e.kind)}};
  if (e.kind == JobEvent::Kind::kStateChange) j["state"] = static_cast<int>(e.state);
  if (e.kind == JobEvent::Kind::kProgress) j["progress"] = ProgressJson(e.progress);
  if (e.kind == JobEvent::Kind::kWarning) j["message"] = e.message;
  if (e.kind == JobEvent::Kind::kTimeline) j["entry"] = EntryJson(e.entry);
  return j;
}

JobEvent EventFrom(const nlohmann::json& j) {
  JobEvent e;
  e.sequence = j.at("seq");
  e.time_ms = j.at("at");
  e.kind = static_cast<JobEvent::Kind>(j.at("kind").get<int>());
  if (j.contains("state")) e.state = static_cast<JobState>(j.at("state").get<int>());
  if (j.contains("progress")) e.progress = ProgressFrom(j.at("progress"));
  if (j.contains("message")) e.message = j.at("message");
  if (j.contains("entry")) e.entry = EntryFrom(j.at("entry"));
  return e;
}

}  // namespace

std::string EncodeJob(const JobRecord& job) {
  nlohmann::json events = nlohmann::json::array();
  for (const JobEvent& e : job.events) events.push_back(EventJson(e));
  nlohmann::json timeline = nlohmann::json::array();
  for (const TimelineEntry& e : job.timeline) timeline.push_back(EntryJson(e));
  nlohmann::json j = {{"id", job.id},
                      {"type", job.type},
                      {"spec", Hex(job.spec)},
                      {"request_id", job.request_id},
                      {"creator", job.creator},
                      {"canceller", job.canceller},
                      {"labels", job.labels},
                      {"keys", job.keys},
                      {"state", static_cast<int>(job.state)},
                      {"created", job.create_ms},
                      {"started", job.start_ms},
                      {"ended", job.end_ms},
                      {"progress", ProgressJson(job.progress)},
                      {"result", Hex(job.result)},
                      {"error_code", static_cast<int>(job.error_code)},
                      {"error", job.error_message},
                      {"warnings", job.warnings},
                      {"last_sequence", job.last_sequence},
                      {"reserved_sequence", job.reserved_sequence},
                      {"leftovers_pending", job.leftovers_pending},
                      {"events", events},
                      {"phase", job.phase},
                      {"timeline", timeline}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<JobRecord> DecodeJob(const std::string& text) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    JobRecord job;
    job.id = j.at("id");
    job.type = j.at("type");
    job.spec = Unhex(j.at("spec"));
    job.request_id = j.at("request_id");
    job.creator = j.at("creator");
    job.canceller = j.at("canceller");
    job.labels = j.at("labels").get<std::map<std::string, std::string>>();
    job.keys = j.at("keys").get<std::map<std::string, std::string>>();
    job.state = static_cast<JobState>(j.at("state").get<int>());
    job.create_ms = j.at("created");
    job.start_ms = j.at("started");
    job.end_ms = j.at("ended");
    job.progress = ProgressFrom(j.at("progress"));
    job.result = Unhex(j.at("result"));
    job.error_code = static_cast<StatusCode>(j.at("error_code").get<int>());
    job.error_message = j.at("error");
    job.warnings = j.at("warnings").get<std::vector<std::string>>();
    job.last_sequence = j.at("last_sequence");
    job.reserved_sequence = j.value("reserved_sequence", uint64_t{0});  // absent before it existed
    job.leftovers_pending = j.value("leftovers_pending", false);        // absent before it existed
    for (const auto& e : j.at("events")) job.events.push_back(EventFrom(e));
    // Records of earlier versions have neither.
    job.phase = j.value("phase", "");
    if (j.contains("timeline")) {
      for (const auto& e : j.at("timeline")) job.timeline.push_back(EntryFrom(e));
    }
    return job;
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(std::string("job record: ") + e.what());
  }
}

Result<std::unique_ptr<JobStore>> JobStore::Open(const std::string& state_dir) {
  std::error_code ec;
  if (!std::filesystem::exists(state_dir, ec)) {
    std::filesystem::create_directories(state_dir, ec);
    if (!ec) std::filesystem::permissions(state_dir, std::filesystem::perms(0700), ec);
    if (ec) return Status::IOError("create state folder " + state_dir + ": " + ec.message());
  }
  std::string path = state_dir + "/jobs.rocksdb";
  rocksdb::Options options;
  options.create_if_missing = true;
  options.keep_log_file_num = 2;
  rocksdb::DB* raw = nullptr;
  OFFHOST_RETURN_IF_ERROR(FromRocksStatus(rocksdb::DB::Open(options, path, &raw), "open " + path));
  return std::unique_ptr<JobStore>(new JobStore(std::unique_ptr<rocksdb::DB>(raw)));
}

Status JobStore::Put(const JobRecord& job, bool synced) {
  rocksdb::WriteOptions options;
  options.sync = synced;
  return FromRocksStatus(db_->Put(options, kKeyPrefix + job.id, EncodeJob(job)),
                         "store job " + job.id);
}

Status JobStore::Delete(const std::string& id) {
  return FromRocksStatus(db_->Delete(rocksdb::WriteOptions(), kKeyPrefix + id), "delete job " + id);
}

Result<std::vector<JobRecord>> JobStore::LoadAll() {
  std::vector<JobRecord> jobs;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(kKeyPrefix); it->Valid() && it->key().starts_with(kKeyPrefix); it->Next()) {
    OFFHOST_ASSIGN_OR_RETURN(JobRecord job, DecodeJob(it->value().ToString()));
    jobs.push_back(std::move(job));
  }
  OFFHOST_RETURN_IF_ERROR(FromRocksStatus(it->status(), "read the jobs"));
  return jobs;
}

}  // namespace offhost::proxy
