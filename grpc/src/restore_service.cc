// offhost.v1 RestoreService (restore.proto). StartDiskRestore and StartFileRestore start jobs
// (restore_jobs.h); DownloadFiles streams a regular file's bytes, or anything as a tar archive
// (tar_stream.h), read from the backup itself (never the catalog: it holds no contents).
#include <openssl/evp.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "catalog_browse.h"
#include "file_info.h"
#include "jobs.h"
#include "names.h"
#include "offhost/proxy/file_restore.h"
#include "offhost/v1/restore.grpc.pb.h"
#include "restore_jobs.h"
#include "services.h"
#include "status_map.h"
#include "tar_stream.h"

namespace offhost::grpcapi {
namespace {

using Writer = grpc::ServerWriter<v1::DownloadFilesResponse>;

// DataChunk.data is at most 1 MiB (restore.proto).
constexpr size_t kChunkBytes = 1 << 20;

// SHA-256 of a stream's bytes, fed as they are sent.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  }
  void Update(std::span<const char> data) {
    EVP_DigestUpdate(ctx_.get(), data.data(), data.size());
  }
  std::string Final() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &size);
    return std::string(reinterpret_cast<const char*>(digest), size);
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

// Sends the range [begin, end) of a download's content as DataChunks of kChunkBytes (the last
// one shorter), hashing what it sends. The content comes in pieces of the producer's size, the
// first ones possibly before the range (ReadFile starts at the file's beginning), so Take()
// drops what lies before the range and regroups the rest.
class RangeSender {
 public:
  RangeSender(Writer* writer, uint64_t begin, uint64_t end)
      : writer_(writer), begin_(begin), end_(end), next_(begin) {}

  // The content's bytes at `offset`, in order. An error once the range is whole, to stop reading.
  Status Take(uint64_t offset, std::span<const char> data) {
    uint64_t from = std::max(offset, begin_), to = std::min(offset + data.size(), end_);
    if (from < to) {
      buffer_.append(data.data() + (from - offset), to - from);
      while (buffer_.size() >= kChunkBytes) OFFHOST_RETURN_IF_ERROR(Send(kChunkBytes));
    }
    if (offset + data.size() >= end_) {
      OFFHOST_RETURN_IF_ERROR(Send(buffer_.size()));
      return Status(StatusCode::kCancelled, "the requested range is sent");
    }
    return Status::OK();
  }
  // Sends what is buffered (the file ended exactly at the range's end).
  Status Finish() { return Send(buffer_.size()); }
  bool complete() const { return next_ == end_ && buffer_.empty(); }

  v1::DownloadTrailer Trailer() {
    v1::DownloadTrailer trailer;
    trailer.set_bytes_sent(next_ - begin_);
    trailer.set_sha256(sha_.Final());
    return trailer;
  }

 private:
  Status Send(size_t size) {
    if (size == 0) return Status::OK();
    v1::DownloadFilesResponse msg;
    msg.mutable_chunk()->set_offset(next_);
    msg.mutable_chunk()->set_data(buffer_.substr(0, size));
    if (!writer_->Write(msg)) return Status(StatusCode::kCancelled, "the caller went away");
    // Counted once written, so the audit log's byte range is what the caller was sent.
    sha_.Update(std::span<const char>(buffer_.data(), size));
    buffer_.erase(0, size);
    next_ += size;
    return Status::OK();
  }

  Writer* writer_;
  uint64_t begin_, end_, next_;  // next_: offset of the first byte not yet sent
  std::string buffer_;
  Sha256 sha_;
};

// The format a download gets: the one asked for, else RAW for a regular file and TAR for
// anything else (restore.proto DownloadFormat).
v1::DownloadFormat ChooseFormat(v1::DownloadFormat asked, const v1::FileInfo& file) {
  if (asked != v1::DOWNLOAD_FORMAT_UNSPECIFIED) return asked;
  return file.type() == v1::FILE_TYPE_REGULAR ? v1::DOWNLOAD_FORMAT_RAW : v1::DOWNLOAD_FORMAT_TAR;
}

// "caller, bytes 0-1048576: OK" — the audit log's "where" for a download (restore.proto wants
// the byte range and the outcome recorded).
// "/restore/web01.img: jobs/ID started", or why it was refused — the audit log's "where" for
// a restore job.
std::string StartOutcome(const std::string& target, const grpc::Status& status,
                         const v1::Job& job) {
  if (!status.ok()) return target + ": " + status.error_message();
  return target + ": " + (job.name().empty() ? "validated" : job.name() + " started");
}

std::string DownloadOutcome(uint64_t begin, uint64_t end, const grpc::Status& status) {
  std::string outcome = status.ok() ? "OK" : status.error_message();
  return "caller, bytes " + std::to_string(begin) + "-" + std::to_string(end) + ": " + outcome;
}

class RestoreService final : public v1::RestoreService::Service {
 public:
  explicit RestoreService(ServiceContext& context) : context_(context) {}

  // Every authorized call is audited when it ends, refused ones too (restore.proto).
  grpc::Status StartDiskRestore(grpc::ServerContext* ctx, const v1::StartDiskRestoreRequest* req,
                                v1::Job* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    DiskRestorePlan plan;
    // Planned first, so even a refusal is audited with what and where.
    grpc::Status status = PlanDiskRestore(context_, ctx, req->spec(), &plan);
    if (status.ok()) status = JobsAvailable(context_, ctx);
    if (status.ok()) {
      status = Start(ctx, v1::JOB_TYPE_DISK_RESTORE, plan.spec, *req, caller, plan,
                     DiskRestoreJob(plan), out);
    }
    context_.audit->Record(caller, "restore-disk", plan.what,
                           StartOutcome(plan.where, status, *out));
    return status;
  }

  grpc::Status StartFileRestore(grpc::ServerContext* ctx, const v1::StartFileRestoreRequest* req,
                                v1::Job* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    FileRestorePlan plan;
    // Planned first, so even a refusal is audited with what and where.
    grpc::Status status = PlanFileRestore(context_, ctx, req->spec(), &plan);
    if (status.ok()) status = JobsAvailable(context_, ctx);
    if (status.ok()) {
      status = Start(ctx, v1::JOB_TYPE_FILE_RESTORE, plan.spec, *req, caller, plan,
                     FileRestoreJob(plan), out);
    }
    context_.audit->Record(caller, "restore-files", plan.what,
                           StartOutcome(plan.where, status, *out));
    return status;
  }

  // Every authorized call is audited, failed ones too; refused ones the Authorizer logs.
  grpc::Status DownloadFiles(grpc::ServerContext* ctx, const v1::DownloadFilesRequest* req,
                             Writer* writer) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    std::string what = req->snapshot() + ":" + GuestPath(*req);
    uint64_t end = req->offset();
    grpc::Status status = Download(ctx, *req, writer, &what, &end);
    context_.audit->Record(caller, "download", what, DownloadOutcome(req->offset(), end, status));
    return status;
  }

 private:
  // Hands a checked restore to the job engine (or, for validate_only, only shows the job it
  // would start).
  template <typename Request, typename Spec>
  grpc::Status Start(grpc::ServerContext* ctx, v1::JobType type, const Spec& spec,
                     const Request& req, const Principal& caller, const RestorePlan& plan,
                     proxy::JobFn fn, v1::Job* out) {
    if (req.validate_only()) {
      out->set_type(type);
      SetSpec(spec, out);
      return grpc::Status::OK;
    }
    proxy::JobRecord record = NewJobRecord(type, spec, req.request_id(), req.labels(), caller.name);
    // The keys ListJobs filters by, as a backup of the same VM has them.
    record.keys = {{"datastore", plan.datastore.name},
                   {"group", GroupResource(plan.datastore.name, plan.vm)},
                   {"vm_id", plan.vm}};
    Result<proxy::JobRecord> job = context_.jobs->Start(std::move(record), std::move(fn));
    if (!job.ok() && job.status().code() == StatusCode::kAlreadyExists) {
      return Fail(ctx, grpc::StatusCode::ALREADY_EXISTS, "REQUEST_ID_REUSED",
                  job.status().message());
    }
    if (!job.ok() && job.status().code() == StatusCode::kUnavailable) {
      return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "SHUTTING_DOWN", job.status().message());
    }
    if (!job.ok()) return ToGrpc(ctx, job.status(), "");
    FillJob(*job, out);
    return grpc::Status::OK;
  }

  static void SetSpec(const v1::DiskRestoreSpec& spec, v1::Job* out) {
    *out->mutable_disk_restore() = spec;
  }
  static void SetSpec(const v1::FileRestoreSpec& spec, v1::Job* out) {
    *out->mutable_file_restore() = spec;
  }

  // Streams the request's range; `what` becomes "VM@SNAPSHOT:PATH" once the snapshot is
  // resolved, and `end` the end of the bytes actually sent.
  grpc::Status Download(grpc::ServerContext* ctx, const v1::DownloadFilesRequest& req,
                        Writer* writer, std::string* what, uint64_t* end) {
    OpenSnapshot snap;
    if (auto st = OpenNamedSnapshot(context_, ctx, req.snapshot(), &snap); !st.ok()) return st;
    std::string path = GuestPath(req);
    *what = snap.short_name() + ":" + path;
    BrowseTarget target{snap.ds.get(), &snap.record, nullptr, nullptr};
    OFFHOST_RPC_ASSIGN_OR_RETURN(v1::FileInfo file, StatEntry(target, path), ctx, "PATH_NOT_FOUND",
                                 "VOLUME_NOT_READABLE");
    v1::DownloadFormat format = ChooseFormat(req.format(), file);
    if (auto st = CheckFormat(ctx, format, file, path); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto opened, proxy::SnapshotFiles::Open(*snap.ds, snap.record),
                                 ctx, "", "VOLUME_NOT_READABLE");
    Content content;
    if (auto st = Prepare(ctx, opened->files(), path, file, format, &content); !st.ok()) return st;
    if (req.offset() > content.size) {
      return Fail(ctx, grpc::StatusCode::OUT_OF_RANGE, "",
                  "offset " + std::to_string(req.offset()) + " is beyond the end of " + path +
                      " (" + std::to_string(content.size) + " bytes)",
                  {{"field", "offset"}});
    }
    uint64_t length = content.size - req.offset();
    if (req.length() != 0) length = std::min(length, req.length());
    SendHeader(writer, snap.name(), file, format, content.size, req.offset(), length);
    return SendContent(ctx, content, path, writer, req.offset(), req.offset() + length, end);
  }

  // What a download sends: its length, known before the first byte, and how to produce the
  // bytes from an offset on (in pieces that may start before it).
  struct Content {
    uint64_t size = 0;
    std::function<Status(uint64_t begin, const TarSink& sink)> send;
    std::vector<std::string> skipped;  // tar: entries left out
  };

  static grpc::Status Prepare(grpc::ServerContext* ctx, mount::GuestFiles& files,
                              const std::string& path, const v1::FileInfo& file,
                              v1::DownloadFormat format, Content* content) {
    if (format == v1::DOWNLOAD_FORMAT_RAW) {
      content->size = file.size_bytes();
      // ReadFile always starts at the file's beginning: the sender drops what lies before.
      content->send = [&files, path](uint64_t, const TarSink& sink) {
        return files.ReadFile(path, sink);
      };
      return grpc::Status::OK;
    }
    Result<TarArchive> planned = TarArchive::Plan(files, path);
    if (!planned.ok())
      return ToGrpc(ctx, planned.status(), "PATH_NOT_FOUND", "VOLUME_NOT_READABLE");
    auto archive = std::make_shared<TarArchive>(std::move(*planned));
    content->size = archive->size();
    content->skipped = archive->skipped();
    content->send = [&files, archive](uint64_t begin, const TarSink& sink) {
      return archive->Send(files, begin, sink);
    };
    return grpc::Status::OK;
  }

  static grpc::Status CheckFormat(grpc::ServerContext* ctx, v1::DownloadFormat format,
                                  const v1::FileInfo& file, const std::string& path) {
    if (format == v1::DOWNLOAD_FORMAT_TAR) return grpc::Status::OK;
    if (format != v1::DOWNLOAD_FORMAT_RAW) {
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                  "unknown format " + std::to_string(format), {{"field", "format"}});
    }
    if (file.type() != v1::FILE_TYPE_REGULAR) {
      return Fail(ctx, grpc::StatusCode::FAILED_PRECONDITION, "NOT_A_REGULAR_FILE",
                  path +
                      " is not a regular file; only regular files have a RAW form (ask for "
                      "DOWNLOAD_FORMAT_TAR)");
    }
    return grpc::Status::OK;
  }

  static void SendHeader(Writer* writer, const std::string& snapshot, const v1::FileInfo& file,
                         v1::DownloadFormat format, uint64_t size, uint64_t offset,
                         uint64_t length) {
    v1::DownloadFilesResponse msg;
    v1::DownloadHeader* header = msg.mutable_header();
    header->set_snapshot(snapshot);
    *header->mutable_file() = file;
    header->set_format(format);
    header->set_content_length_bytes(size);
    header->set_offset(offset);
    header->set_length(length);
    writer->Write(msg);
  }

  // The content's bytes in [begin, end), then the trailer; `*sent_end` ends what was sent.
  static grpc::Status SendContent(grpc::ServerContext* ctx, const Content& content,
                                  const std::string& path, Writer* writer, uint64_t begin,
                                  uint64_t end, uint64_t* sent_end) {
    RangeSender sender(writer, begin, end);
    Status read = Status::OK();
    if (begin < end) {
      read = content.send(begin, [&](uint64_t offset, std::span<const char> data) {
        if (ctx->IsCancelled()) return Status(StatusCode::kCancelled, "the caller went away");
        return sender.Take(offset, data);
      });
      if (read.ok()) read = sender.Finish();
    }
    v1::DownloadTrailer trailer = sender.Trailer();
    *sent_end = begin + trailer.bytes_sent();
    // Take() stops the read with an error once the range is whole: that one is success.
    if (!sender.complete()) {
      if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, read.message());
      if (!read.ok()) return ToGrpc(ctx, read, "PATH_NOT_FOUND", "VOLUME_NOT_READABLE");
      return Fail(ctx, grpc::StatusCode::DATA_LOSS, "",
                  path + " ended at " + std::to_string(*sent_end) + " bytes, short of " +
                      std::to_string(end));
    }
    for (const std::string& s : content.skipped) trailer.add_skipped(s);
    v1::DownloadFilesResponse msg;
    *msg.mutable_trailer() = std::move(trailer);
    writer->Write(msg);
    return grpc::Status::OK;
  }

  ServiceContext& context_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeRestoreService(ServiceContext& context) {
  return std::make_unique<RestoreService>(context);
}

}  // namespace offhost::grpcapi
