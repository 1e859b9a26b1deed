#include "jobs.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/time_util.h>

#include "status_map.h"

namespace offhost::grpcapi {
namespace {

using google::protobuf::util::TimeUtil;

void SetMs(int64_t ms, google::protobuf::Timestamp* out) {
  *out = TimeUtil::MillisecondsToTimestamp(ms);
}

void FillProgress(const proxy::JobProgress& p, v1::JobProgress* out) {
  out->set_total_bytes(p.total_bytes);
  out->set_done_bytes(p.done_bytes);
  out->set_bytes_read(p.bytes_read);
  out->set_new_bytes(p.new_bytes);
  out->set_total_items(p.total_items);
  out->set_done_items(p.done_items);
  if (p.update_ms > 0) SetMs(p.update_ms, out->mutable_update_time());
}

// The spec and result blobs go into the oneof member of the job's type.
void FillSpecAndResult(const proxy::JobRecord& r, v1::Job* out) {
  switch (JobTypeOf(r.type)) {
    case v1::JOB_TYPE_BACKUP:
      out->mutable_backup()->ParseFromString(r.spec);
      if (!r.result.empty()) out->mutable_backup_result()->ParseFromString(r.result);
      break;
    case v1::JOB_TYPE_VERIFY:
      out->mutable_verify()->ParseFromString(r.spec);
      if (!r.result.empty()) out->mutable_verify_result()->ParseFromString(r.result);
      break;
    case v1::JOB_TYPE_GC:
      out->mutable_gc()->ParseFromString(r.spec);
      if (!r.result.empty()) out->mutable_gc_result()->ParseFromString(r.result);
      break;
    case v1::JOB_TYPE_DISK_RESTORE:
      out->mutable_disk_restore()->ParseFromString(r.spec);
      if (!r.result.empty()) out->mutable_disk_restore_result()->ParseFromString(r.result);
      break;
    case v1::JOB_TYPE_FILE_RESTORE:
      out->mutable_file_restore()->ParseFromString(r.spec);
      if (!r.result.empty()) out->mutable_file_restore_result()->ParseFromString(r.result);
      break;
    default:
      break;
  }
}

v1::JobPhase PhaseOf(const proxy::JobRecord& r) {
  if (proxy::IsTerminal(r.state)) return v1::JOB_PHASE_DONE;
  if (r.phase == "waiting_for_slot") return v1::JOB_PHASE_WAITING_FOR_SLOT;
  if (r.phase == "retry_wait") return v1::JOB_PHASE_RETRY_WAIT;
  if (r.state == proxy::JobState::kQueued) return v1::JOB_PHASE_QUEUED;
  v1::JobType type = JobTypeOf(r.type);
  return type == v1::JOB_TYPE_VERIFY || type == v1::JOB_TYPE_GC ? v1::JOB_PHASE_CHECK
                                                                : v1::JOB_PHASE_READ;
}

void FillEntry(const proxy::TimelineEntry& e, v1::JobTimelineEntry* out) {
  SetMs(e.time_ms, out->mutable_time());
  out->set_what(e.what);
  out->set_detail(e.detail);
}

}  // namespace

std::string JobTypeWord(v1::JobType type) {
  switch (type) {
    case v1::JOB_TYPE_BACKUP:
      return "backup";
    case v1::JOB_TYPE_DISK_RESTORE:
      return "disk_restore";
    case v1::JOB_TYPE_FILE_RESTORE:
      return "file_restore";
    case v1::JOB_TYPE_VERIFY:
      return "verify";
    case v1::JOB_TYPE_GC:
      return "gc";
    default:
      return "";
  }
}

v1::JobType JobTypeOf(const std::string& word) {
  for (v1::JobType t : {v1::JOB_TYPE_BACKUP, v1::JOB_TYPE_DISK_RESTORE, v1::JOB_TYPE_FILE_RESTORE,
                        v1::JOB_TYPE_VERIFY, v1::JOB_TYPE_GC}) {
    if (JobTypeWord(t) == word) return t;
  }
  return v1::JOB_TYPE_UNSPECIFIED;
}

Result<std::string> ParseJobName(const std::string& name, const std::string& field) {
  constexpr std::string_view kPrefix = "jobs/";
  std::string id = name.starts_with(kPrefix) ? name.substr(kPrefix.size()) : "";
  bool ok = !id.empty() && id.size() <= 63;
  for (char c : id) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!ok) {
    return Status::InvalidArgument(field + " \"" + name +
                                   "\" is not a job name; expected \"jobs/{job}\" as Start* "
                                   "returned it");
  }
  return id;
}

std::string JobResource(const std::string& id) { return "jobs/" + id; }

void FillJob(const proxy::JobRecord& r, v1::Job* out) {
  out->set_name(JobResource(r.id));
  out->set_type(JobTypeOf(r.type));
  out->set_state(static_cast<v1::JobState>(r.state));
  out->set_request_id(r.request_id);
  out->mutable_creator()->set_name(r.creator);
  if (!r.canceller.empty()) out->mutable_canceller()->set_name(r.canceller);
  SetMs(r.create_ms, out->mutable_create_time());
  if (r.start_ms > 0) SetMs(r.start_ms, out->mutable_start_time());
  if (r.end_ms > 0) SetMs(r.end_ms, out->mutable_end_time());
  out->mutable_labels()->insert(r.labels.begin(), r.labels.end());
  FillProgress(r.progress, out->mutable_progress());
  out->mutable_progress()->set_phase(PhaseOf(r));
  if (r.error_code != StatusCode::kOk) {
    // google.rpc codes: the same numbers as gRPC's.
    out->mutable_error()->set_code(r.state == proxy::JobState::kCancelled
                                       ? grpc::StatusCode::CANCELLED
                                       : static_cast<int>(ToGrpcCode(r.error_code)));
    out->mutable_error()->set_message(r.error_message);
  }
  for (const std::string& w : r.warnings) out->add_warnings(w);
  out->set_last_sequence(r.last_sequence);
  for (const proxy::TimelineEntry& e : r.timeline) FillEntry(e, out->add_timeline());
  FillSpecAndResult(r, out);
}

void FillJobEvent(const proxy::JobEvent& e, const proxy::JobRecord& job, v1::JobEvent* out) {
  out->set_sequence(e.sequence);
  SetMs(e.time_ms, out->mutable_time());
  out->set_job(JobResource(job.id));
  if (e.kind == proxy::JobEvent::Kind::kProgress) {
    FillProgress(e.progress, out->mutable_progress());
    out->mutable_progress()->set_phase(PhaseOf(job));
    return;
  }
  if (e.kind == proxy::JobEvent::Kind::kWarning) {
    out->mutable_warning()->set_message(e.message);
    return;
  }
  if (e.kind == proxy::JobEvent::Kind::kTimeline) {
    FillEntry(e.entry, out->mutable_timeline_entry());
    return;
  }
  out->mutable_state_change()->set_state(static_cast<v1::JobState>(e.state));
  FillJob(job, out->mutable_state_change()->mutable_job());
}

proxy::JobRecord NewJobRecord(v1::JobType type, const google::protobuf::Message& spec,
                              const std::string& request_id,
                              const google::protobuf::Map<std::string, std::string>& labels,
                              const std::string& creator) {
  proxy::JobRecord record;
  record.type = JobTypeWord(type);
  // Deterministic, so a retry with the same request_id compares equal byte for byte.
  {
    google::protobuf::io::StringOutputStream stream(&record.spec);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }  // the streams flush into record.spec when they end
  record.request_id = request_id;
  record.labels.insert(labels.begin(), labels.end());
  record.creator = creator;
  return record;
}

grpc::Status JobsAvailable(const ServiceContext& context, grpc::ServerContext* ctx) {
  if (context.jobs != nullptr) return grpc::Status::OK;
  return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "", "this server runs no job engine");
}

ProgressTicker::ProgressTicker(proxy::JobControl& control, std::function<proxy::JobProgress()> poll)
    : control_(control), poll_(std::move(poll)) {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stop_; })) {
      control_.SetProgress(poll_());
    }
  });
}

ProgressTicker::~ProgressTicker() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
  control_.SetProgress(poll_());
}

}  // namespace offhost::grpcapi
