#include "daemon_convert.h"

#include <google/protobuf/util/json_util.h>

#include <iostream>

#include "cli_util.h"
#include "offhost/v1/catalog.grpc.pb.h"

namespace offhost::cli {

std::string DriverName(v1::Driver d) {
  switch (d) {
    case v1::DRIVER_NBD:
      return "nbd";
    case v1::DRIVER_ISCSI:
      return "iscsi";
    case v1::DRIVER_IMAGE:
      return "image";
    case v1::DRIVER_LIBVIRT:
      return "libvirt";
    case v1::DRIVER_QEMU:
      return "qemu";
    default:
      return "unknown";
  }
}

nlohmann::json ProtoJson(const google::protobuf::Message& m) {
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &text, options);
  return nlohmann::json::parse(text);
}

std::string LastPart(const std::string& name) { return name.substr(name.rfind('/') + 1); }

storage::SnapshotRecord FromProto(const v1::Snapshot& s) {
  storage::SnapshotRecord r;
  r.vm = LastPart(s.backup_group());
  r.id = s.snapshot_id();
  r.started = s.start_time().seconds();
  r.finished = s.end_time().seconds();
  r.meta.vm_uuid = s.vm_uuid();
  r.meta.driver = DriverName(s.driver());
  r.meta.consistency = s.consistency() == v1::CONSISTENCY_APPLICATION ? "application" : "crash";
  r.meta.consistency_reason = s.consistency_reason();
  r.meta.checkpoint = s.checkpoint();
  r.meta.parent = s.parent();
  for (const auto& d : s.disks()) {
    storage::DiskRecord disk;
    disk.name = d.name();
    disk.source = d.source();
    disk.size = d.size_bytes();
    disk.chunks = d.chunk_count();
    disk.new_chunks = d.new_chunk_count();
    disk.bytes_read = d.bytes_read();
    disk.new_bytes = d.new_bytes();
    disk.zero_bytes = d.zero_bytes();
    disk.unallocated_bytes = d.unallocated_bytes();
    disk.incremental = d.incremental();
    disk.full_reason = d.full_reason();
    disk.dirty_bytes = d.dirty_bytes();
    disk.reused_bytes = d.reused_bytes();
    disk.identity = d.identity();
    r.disks.push_back(std::move(disk));
  }
  return r;
}

mount::FileInfo ToGuestFile(const v1::FileInfo& f) {
  mount::FileInfo g;
  g.name = f.name();
  // A volume is shown as the folder the local mode makes of it.
  bool folder = f.type() == v1::FILE_TYPE_DIRECTORY || f.type() == v1::FILE_TYPE_VOLUME;
  g.type = f.type() == v1::FILE_TYPE_REGULAR   ? mount::FileType::kRegular
           : folder                            ? mount::FileType::kDirectory
           : f.type() == v1::FILE_TYPE_SYMLINK ? mount::FileType::kSymlink
                                               : mount::FileType::kOther;
  g.size = f.size_bytes();
  g.mode = f.mode();
  g.uid = f.uid();
  g.gid = f.gid();
  g.mtime = f.modify_time().seconds();
  g.atime = f.access_time().seconds();
  g.ctime = f.change_time().seconds();
  g.link_target = f.link_target();
  return g;
}

storage::CatalogEntry ToCatalogEntry(const v1::FileInfo& f) {
  storage::CatalogEntry e;
  e.name = f.name();
  e.type = f.type() == v1::FILE_TYPE_REGULAR     ? storage::CatalogFileType::kRegular
           : f.type() == v1::FILE_TYPE_DIRECTORY ? storage::CatalogFileType::kDirectory
           : f.type() == v1::FILE_TYPE_SYMLINK   ? storage::CatalogFileType::kSymlink
                                                 : storage::CatalogFileType::kOther;
  e.size = f.size_bytes();
  e.mode = f.mode();
  e.uid = f.uid();
  e.gid = f.gid();
  e.mtime = f.modify_time().seconds();
  e.atime = f.access_time().seconds();
  e.ctime = f.change_time().seconds();
  e.link_target = f.link_target();
  return e;
}

Result<std::string> FindSnapshotResource(const DaemonClient& client, const std::string& vm,
                                         const std::string& snapshot, int* exit) {
  auto stub = v1::CatalogService::NewStub(client.channel());
  v1::ListSnapshotsRequest req;
  req.set_parent("datastores/-/vms/" + vm);
  req.set_page_size(1000);
  do {
    v1::ListSnapshotsResponse resp;
    auto ctx = client.Context();
    grpc::Status st = stub->ListSnapshots(ctx.get(), req, &resp);
    if (!st.ok()) {
      *exit = ReportRpcError(st, *ctx, client);
      return Status::Unavailable("reported");
    }
    // Newest first, so "latest" is the first one.
    for (const auto& s : resp.snapshots()) {
      if (snapshot == "latest" || s.snapshot_id() == snapshot) return s.name();
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  *exit = kExitFailed;
  std::cerr << "offhost: error: no snapshot " << vm << "@" << snapshot
            << " in any of offhostd's datastores; list them with 'offhost snapshots --vm " << vm
            << "'\n";
  return Status::NotFound("reported");
}

}  // namespace offhost::cli
