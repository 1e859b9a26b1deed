// offhost.v1 ExportService (export.proto): instant-recovery exports run by the daemon's
// proxy::ExportRegistry (nbdkit + nbdkit-offhost-plugin.so per export).
#include <google/protobuf/util/time_util.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>

#include "names.h"
#include "offhost/proxy/nbd_export.h"
#include "offhost/v1/export.grpc.pb.h"
#include "restore_jobs.h"
#include "services.h"
#include "status_map.h"

namespace offhost::grpcapi {
namespace {

using google::protobuf::util::TimeUtil;

constexpr char kExportPrefix[] = "exports/";

// What the registry does not know: who started an export, and when.
struct Started {
  std::string by;
  int64_t ms = 0;
};

class ExportService final : public v1::ExportService::Service {
 public:
  explicit ExportService(ServiceContext& context) : context_(context) {}

  grpc::Status StartExport(grpc::ServerContext* ctx, const v1::StartExportRequest* req,
                           v1::Export* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    if (!context_.exports) {
      return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "UNAVAILABLE", "this daemon runs no exports");
    }
    OpenSnapshot snap;
    if (auto st = OpenNamedSnapshot(context_, ctx, req->snapshot(), &snap); !st.ok()) return st;
    std::string disk = req->disk();
    if (auto st = CheckDisk(ctx, snap, &disk); !st.ok()) return st;
    if (auto st = CheckListen(ctx, req->listen_address()); !st.ok()) return st;

    proxy::ExportOptions options;
    options.datastore = snap.config->path;
    options.vm = snap.record.vm;
    options.snapshot = snap.record.id;
    options.disk = disk;
    options.listen = req->listen_address();
    options.overlay = req->overlay();
    if (req->cache_bytes() > 0) options.cache_bytes = req->cache_bytes();
    snap.ds.reset();  // nbdkit opens it itself
    Result<proxy::ExportInfo> info = context_.exports->Start(options);
    if (!info.ok()) return ToGrpc(ctx, info.status(), "SNAPSHOT_NOT_FOUND");
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    {
      std::lock_guard<std::mutex> lock(mu_);
      started_[info->id] = {caller.name, now};
    }
    context_.audit->Record(caller, "export-disk", snap.short_name() + " disk " + disk,
                           info->uri + (options.overlay ? " (overlay)" : " (read-only)"));
    Fill(*snap.config, *info, out);
    return grpc::Status::OK;
  }

  grpc::Status StopExport(grpc::ServerContext* ctx, const v1::StopExportRequest* req,
                          v1::Export* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    const std::string& name = req->name();
    if (name.rfind(kExportPrefix, 0) != 0 || name.size() == sizeof kExportPrefix - 1) {
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                  "name \"" + name + "\" is not exports/{id}", {{"field", "name"}});
    }
    std::string id = name.substr(sizeof kExportPrefix - 1);
    bool found = false;
    for (const auto& e :
         context_.exports ? context_.exports->List() : std::vector<proxy::ExportInfo>{}) {
      if (e.id != id) continue;
      found = true;
      FillFromRegistry(e, out);
    }
    if (!found || !context_.exports->Stop(id).ok()) {
      return Fail(ctx, grpc::StatusCode::NOT_FOUND, "EXPORT_NOT_FOUND",
                  "no export " + name + "; list them with ListExports");
    }
    context_.audit->Record(caller, "stop-export", name, out->uri());
    std::lock_guard<std::mutex> lock(mu_);
    started_.erase(id);
    return grpc::Status::OK;
  }

  grpc::Status ListExports(grpc::ServerContext* ctx, const v1::ListExportsRequest*,
                           v1::ListExportsResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    if (!context_.exports) return grpc::Status::OK;
    for (const auto& e : context_.exports->List()) FillFromRegistry(e, out->add_exports());
    return grpc::Status::OK;
  }

 private:
  grpc::Status CheckDisk(grpc::ServerContext* ctx, const OpenSnapshot& snap, std::string* disk) {
    const auto& disks = snap.record.disks;
    std::string names;
    for (const auto& d : disks) names += (names.empty() ? "" : ", ") + d.name;
    if (disk->empty()) {
      if (disks.size() == 1) {
        *disk = disks[0].name;
        return grpc::Status::OK;
      }
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                  snap.short_name() + " has several disks (" + names + "); choose one in disk",
                  {{"field", "disk"}});
    }
    for (const auto& d : disks) {
      if (d.name == *disk) return grpc::Status::OK;
    }
    return Fail(ctx, grpc::StatusCode::NOT_FOUND, "DISK_NOT_FOUND",
                snap.short_name() + " has no disk \"" + *disk + "\" (it has: " + names + ")");
  }

  // A TCP export listens only on an address the daemon itself serves on (the backup network).
  grpc::Status CheckListen(grpc::ServerContext* ctx, const std::string& address) {
    if (address.empty()) return grpc::Status::OK;
    std::string host, port;
    if (Status st = proxy::ParseListenAddress(address, &host, &port); !st.ok()) {
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT", st.message(),
                  {{"field", "listen_address"}});
    }
    for (const auto& allowed : context_.export_hosts) {
      if (allowed == host) return grpc::Status::OK;
    }
    std::string hosts;
    for (const auto& h : context_.export_hosts) hosts += (hosts.empty() ? "" : ", ") + h;
    return Fail(ctx, grpc::StatusCode::PERMISSION_DENIED, "EXPORT_ADDRESS_NOT_ALLOWED",
                "exports may listen only on the daemon's own [server] listen addresses (" +
                    (hosts.empty() ? std::string("none: use a unix socket") : hosts) + "), not " +
                    host);
  }

  void FillFromRegistry(const proxy::ExportInfo& e, v1::Export* out) {
    namespace fs = std::filesystem;
    for (const auto& ds : context_.datastores) {
      if (fs::absolute(ds.path).lexically_normal().string() == e.datastore) {
        Fill(ds, e, out);
        return;
      }
    }
  }

  void Fill(const DatastoreConfig& ds, const proxy::ExportInfo& e, v1::Export* out) {
    out->set_name(kExportPrefix + e.id);
    out->set_snapshot(SnapshotResource(ds.name, e.vm, e.snapshot));
    out->set_disk(e.disk);
    out->set_size_bytes(e.size);
    out->set_uri(e.uri);
    out->set_overlay(e.overlay);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = started_.find(e.id);
    if (it != started_.end()) {
      out->set_started_by(it->second.by);
      *out->mutable_start_time() = TimeUtil::MillisecondsToTimestamp(it->second.ms);
    }
  }

  ServiceContext& context_;
  std::mutex mu_;
  std::map<std::string, Started> started_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeExportService(ServiceContext& context) {
  return std::make_unique<ExportService>(context);
}

}  // namespace offhost::grpcapi
