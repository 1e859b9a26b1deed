// offhost.v1 RestoreService (restore.proto). DownloadFiles streams a regular file's bytes,
// read from the backup itself (never the catalog: it holds no contents). Tar downloads and the
// restore jobs (StartDiskRestore, StartFileRestore) are not served yet and say so.
#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <span>
#include <string>

#include "catalog_browse.h"
#include "datastores.h"
#include "file_info.h"
#include "names.h"
#include "offhost/proxy/file_restore.h"
#include "offhost/v1/restore.grpc.pb.h"
#include "services.h"
#include "status_map.h"

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

// Sends the range [begin, end) of a file's content as DataChunks of kChunkBytes (the last one
// shorter), hashing what it sends. GuestFiles::ReadFile hands over the file from its start in
// pieces of its own size, so Take() drops what lies before the range and regroups the rest.
class RangeSender {
 public:
  RangeSender(Writer* writer, uint64_t begin, uint64_t end)
      : writer_(writer), begin_(begin), end_(end), next_(begin) {}

  // The file's bytes at `offset`, in order. An error once the range is whole, to stop reading.
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

// The snapshot a request names, resolved ("latest" too), with its datastore open.
struct OpenSnapshot {
  const DatastoreConfig* config = nullptr;
  std::unique_ptr<storage::Datastore> ds;
  storage::SnapshotRecord record;

  std::string name() const { return SnapshotResource(config->name, record.vm, record.id); }
};

// The format a download gets: the one asked for, else RAW for a regular file and TAR for
// anything else (restore.proto DownloadFormat).
v1::DownloadFormat ChooseFormat(v1::DownloadFormat asked, const v1::FileInfo& file) {
  if (asked != v1::DOWNLOAD_FORMAT_UNSPECIFIED) return asked;
  return file.type() == v1::FILE_TYPE_REGULAR ? v1::DOWNLOAD_FORMAT_RAW : v1::DOWNLOAD_FORMAT_TAR;
}

// "caller, bytes 0-1048576: OK" — the audit log's "where" for a download (restore.proto wants
// the byte range and the outcome recorded).
std::string DownloadOutcome(uint64_t begin, uint64_t end, const grpc::Status& status) {
  std::string outcome = status.ok() ? "OK" : status.error_message();
  return "caller, bytes " + std::to_string(begin) + "-" + std::to_string(end) + ": " + outcome;
}

class RestoreService final : public v1::RestoreService::Service {
 public:
  explicit RestoreService(ServiceContext& context) : context_(context) {}

  grpc::Status StartDiskRestore(grpc::ServerContext* ctx, const v1::StartDiskRestoreRequest*,
                                v1::Job*) override {
    return NeedsJobs(ctx, "StartDiskRestore");
  }

  grpc::Status StartFileRestore(grpc::ServerContext* ctx, const v1::StartFileRestoreRequest*,
                                v1::Job*) override {
    return NeedsJobs(ctx, "StartFileRestore");
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
  grpc::Status NeedsJobs(grpc::ServerContext* ctx, const std::string& rpc) {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    return Fail(ctx, grpc::StatusCode::UNIMPLEMENTED, "",
                rpc +
                    " is not available yet: it runs as a job, and this offhostd has no job "
                    "engine; use DownloadFiles, or the offhost CLI on the proxy");
  }

  // Streams the request's range; `what` becomes "VM@SNAPSHOT:PATH" once the snapshot is
  // resolved, and `end` the end of the bytes actually sent.
  grpc::Status Download(grpc::ServerContext* ctx, const v1::DownloadFilesRequest& req,
                        Writer* writer, std::string* what, uint64_t* end) {
    OpenSnapshot snap;
    if (auto st = Open(ctx, req.snapshot(), &snap); !st.ok()) return st;
    std::string path = GuestPath(req);
    *what = snap.record.vm + "@" + snap.record.id + ":" + path;
    BrowseTarget target{snap.ds.get(), &snap.record, nullptr, nullptr};
    OFFHOST_RPC_ASSIGN_OR_RETURN(v1::FileInfo file, StatEntry(target, path), ctx, "PATH_NOT_FOUND",
                                 "VOLUME_NOT_READABLE");
    v1::DownloadFormat format = ChooseFormat(req.format(), file);
    if (auto st = CheckFormat(ctx, format, file, path); !st.ok()) return st;
    uint64_t size = file.size_bytes();
    if (req.offset() > size) {
      return Fail(ctx, grpc::StatusCode::OUT_OF_RANGE, "",
                  "offset " + std::to_string(req.offset()) + " is beyond the end of " + path +
                      " (" + std::to_string(size) + " bytes)",
                  {{"field", "offset"}});
    }
    uint64_t length = size - req.offset();
    if (req.length() != 0) length = std::min(length, req.length());
    SendHeader(writer, snap.name(), file, format, size, req.offset(), length);
    return SendContent(ctx, snap, path, writer, req.offset(), req.offset() + length, end);
  }

  grpc::Status Open(grpc::ServerContext* ctx, const std::string& name, OpenSnapshot* snap) {
    OFFHOST_RPC_ASSIGN_OR_RETURN(SnapshotName n, ParseSnapshotName(name, "snapshot"), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(snap->config, FindDatastore(context_, n.datastore), ctx,
                                 "DATASTORE_NOT_FOUND");
    OFFHOST_RPC_ASSIGN_OR_RETURN(snap->ds, OpenDatastore(*snap->config), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(snap->record, snap->ds->FindSnapshot(n.vm, n.id), ctx,
                                 "SNAPSHOT_NOT_FOUND");
    return grpc::Status::OK;
  }

  static grpc::Status CheckFormat(grpc::ServerContext* ctx, v1::DownloadFormat format,
                                  const v1::FileInfo& file, const std::string& path) {
    if (format == v1::DOWNLOAD_FORMAT_TAR) {
      return Fail(ctx, grpc::StatusCode::UNIMPLEMENTED, "",
                  "tar downloads are not available yet: download the regular files under " + path +
                      " one by one (DOWNLOAD_FORMAT_RAW)");
    }
    if (format != v1::DOWNLOAD_FORMAT_RAW) {
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                  "unknown format " + std::to_string(format), {{"field", "format"}});
    }
    if (file.type() != v1::FILE_TYPE_REGULAR) {
      return Fail(ctx, grpc::StatusCode::FAILED_PRECONDITION, "NOT_A_REGULAR_FILE",
                  path + " is not a regular file; only regular files have a RAW form");
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

  // The file's bytes in [begin, end), then the trailer; `*sent_end` ends what was sent.
  static grpc::Status SendContent(grpc::ServerContext* ctx, OpenSnapshot& snap,
                                  const std::string& path, Writer* writer, uint64_t begin,
                                  uint64_t end, uint64_t* sent_end) {
    RangeSender sender(writer, begin, end);
    Status read = Status::OK();
    if (begin < end) {
      OFFHOST_RPC_ASSIGN_OR_RETURN(auto opened, proxy::SnapshotFiles::Open(*snap.ds, snap.record),
                                   ctx, "", "VOLUME_NOT_READABLE");
      read = opened->files().ReadFile(path, [&](uint64_t offset, std::span<const char> data) {
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
