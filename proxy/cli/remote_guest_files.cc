#include "remote_guest_files.h"

#include "daemon_convert.h"
#include "offhost/v1/catalog.grpc.pb.h"
#include "offhost/v1/restore.grpc.pb.h"
#include "offhost/v1/system.grpc.pb.h"

namespace offhost::cli {
namespace {

// The daemon's answer as a Status the FUSE tree turns into an errno (ENOENT, EINVAL, EIO).
Status FromRpc(const grpc::Status& st, const std::string& what) {
  std::string m = what + ": " + st.error_message();
  switch (st.error_code()) {
    case grpc::StatusCode::OK:
      return Status::OK();
    case grpc::StatusCode::NOT_FOUND:
      return Status::NotFound(m);
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return Status::InvalidArgument(m);
    case grpc::StatusCode::FAILED_PRECONDITION:
      return Status::FailedPrecondition(m);
    case grpc::StatusCode::UNAVAILABLE:
      return Status::Unavailable(m + " (is offhostd still running?)");
    case grpc::StatusCode::DATA_LOSS:
      return Status::Corruption(m);
    default:
      return Status::IOError(m);
  }
}

mount::VolumeInfo ToVolume(const v1::FileInfo& f) {
  mount::VolumeInfo v;
  v.name = f.name();
  v.offset = f.volume().offset_bytes();
  v.length = f.volume().length_bytes();
  v.fs_type = f.volume().fs_type();
  v.not_indexed = f.volume().not_indexed_reason();
  return v;
}

}  // namespace

// File contents come from DownloadFiles, which needs the operator role: a read-only caller is
// told now, not with an I/O error at its first read.
Status CheckMayRead(const DaemonClient& client) {
  auto stub = v1::SystemService::NewStub(client.channel());
  v1::WhoAmIRequest req;
  v1::WhoAmIResponse resp;
  auto ctx = client.Context();
  grpc::Status st = stub->WhoAmI(ctx.get(), req, &resp);
  if (!st.ok()) return FromRpc(st, "ask offhostd who this caller is");
  if (resp.principal().role() < v1::ROLE_OPERATOR) {
    return Status::FailedPrecondition(
        "mounting through offhostd reads files with DownloadFiles, which needs the operator "
        "role; " +
        resp.principal().name() +
        " is read-only: use an operator token (--token-file), or `offhost ls` to browse");
  }
  return Status::OK();
}

Result<std::unique_ptr<RemoteGuestFiles>> RemoteGuestFiles::Open(const DaemonClient& client,
                                                                 std::string snapshot) {
  OFFHOST_RETURN_IF_ERROR(CheckMayRead(client));
  std::unique_ptr<RemoteGuestFiles> files(new RemoteGuestFiles(client, std::move(snapshot)));
  auto stub = v1::CatalogService::NewStub(client.channel());
  v1::ListFilesRequest req;
  req.set_snapshot(files->snapshot_);
  req.set_path("/");
  req.set_page_size(1000);
  do {
    v1::ListFilesResponse resp;
    auto ctx = client.Context();
    grpc::Status st = stub->ListFiles(ctx.get(), req, &resp);
    if (!st.ok()) return FromRpc(st, "list the volumes of " + files->snapshot_);
    for (const auto& f : resp.entries()) {
      if (f.type() == v1::FILE_TYPE_VOLUME) files->volumes_.push_back(ToVolume(f));
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return files;
}

Result<mount::FileInfo> RemoteGuestFiles::Stat(const std::string& path) {
  if (path == "/") {
    mount::FileInfo root;
    root.name = "/";
    root.type = mount::FileType::kDirectory;
    root.mode = 0555;
    return root;
  }
  auto stub = v1::CatalogService::NewStub(client_.channel());
  v1::GetFileInfoRequest req;
  req.set_snapshot(snapshot_);
  req.set_path(path);
  v1::GetFileInfoResponse resp;
  auto ctx = client_.Context();
  grpc::Status st = stub->GetFileInfo(ctx.get(), req, &resp);
  if (!st.ok()) return FromRpc(st, path);
  mount::FileInfo info = ToGuestFile(resp.file());
  // A volume is the folder of its file system's root.
  if (resp.file().type() == v1::FILE_TYPE_VOLUME) info.type = mount::FileType::kDirectory;
  return info;
}

Result<std::vector<mount::FileInfo>> RemoteGuestFiles::List(const std::string& path) {
  auto stub = v1::CatalogService::NewStub(client_.channel());
  v1::ListFilesRequest req;
  req.set_snapshot(snapshot_);
  req.set_path(path);
  req.set_page_size(1000);
  std::vector<mount::FileInfo> out;
  do {
    v1::ListFilesResponse resp;
    auto ctx = client_.Context();
    grpc::Status st = stub->ListFiles(ctx.get(), req, &resp);
    if (!st.ok()) return FromRpc(st, path);
    for (const auto& f : resp.entries()) {
      mount::FileInfo info = ToGuestFile(f);
      if (f.type() == v1::FILE_TYPE_VOLUME) info.type = mount::FileType::kDirectory;
      out.push_back(std::move(info));
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return out;
}

Status RemoteGuestFiles::ReadFile(
    const std::string& path, const std::function<Status(uint64_t, std::span<const char>)>& sink) {
  auto stub = v1::RestoreService::NewStub(client_.channel());
  v1::DownloadFilesRequest req;
  req.set_snapshot(snapshot_);
  req.set_path(path);
  req.set_format(v1::DOWNLOAD_FORMAT_RAW);
  auto ctx = client_.Context();
  auto reader = stub->DownloadFiles(ctx.get(), req);
  Status local;  // the sink's first error: the stream is then cancelled
  v1::DownloadFilesResponse msg;
  while (local.ok() && reader->Read(&msg)) {
    if (!msg.has_chunk()) continue;
    const std::string& data = msg.chunk().data();
    local = sink(msg.chunk().offset(), std::span<const char>(data.data(), data.size()));
  }
  if (!local.ok()) {
    ctx->TryCancel();
    reader->Finish();  // cancelled by us: its status says only that
    return local;
  }
  grpc::Status st = reader->Finish();
  return st.ok() ? Status::OK() : FromRpc(st, "read " + path);
}

Result<std::vector<mount::FileExtent>> RemoteGuestFiles::Extents(const std::string& path) {
  return Status::NotSupported(path + ": file extents are not available through offhostd");
}

}  // namespace offhost::cli
