// offhost.v1 DatastoreService (datastore.proto): the configured datastores, their settings and
// how full they are; StartVerify starts a verify job (verify_job.h).
#include <sys/statvfs.h>

#include <set>

#include "datastores.h"
#include "file_info.h"
#include "gc_job.h"
#include "jobs.h"
#include "names.h"
#include "offhost/v1/datastore.grpc.pb.h"
#include "pagination.h"
#include "services.h"
#include "space_accounting.h"
#include "status_map.h"
#include "verify_job.h"

namespace offhost::grpcapi {
namespace {

// Datastore::Open refuses every format version but this one.
constexpr uint32_t kFormatVersion = 1;

void FillDatastore(const DatastoreConfig& config, const storage::Datastore& ds,
                   v1::Datastore* out) {
  out->set_name(DatastoreResource(config.name));
  out->set_path(config.path);
  out->set_uuid(ds.config().uuid);
  SetTime(ds.config().created, out->mutable_create_time());
  out->set_format_version(kFormatVersion);
  out->set_chunker(ds.config().chunker);
  out->set_chunk_size_bytes(ds.config().chunk_size);
  out->set_zstd_level(ds.config().zstd_level);
  out->set_description(config.description);
}

Status FillFilesystem(const std::string& path, v1::DatastoreStatus* out) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return Status::FromErrno("statvfs " + path, errno);
  out->set_filesystem_size_bytes(uint64_t{st.f_blocks} * st.f_frsize);
  out->set_filesystem_free_bytes(uint64_t{st.f_bavail} * st.f_frsize);
  return Status::OK();
}

// What the snapshot records tell, now. The chunk figures (unique, stored, unreferenced bytes,
// chunk count, the ratios) need a walk of every manifest and chunk file: they come from the
// SpaceAccountant's last count (space_accounting.h), as of its accounting_time.
Status FillSnapshotFigures(storage::Datastore& ds, v1::DatastoreStatus* out) {
  OFFHOST_ASSIGN_OR_RETURN(auto snaps, ds.ListSnapshots());
  std::set<std::string> vms;
  uint64_t logical = 0;
  for (const auto& s : snaps) {
    vms.insert(s.vm);
    logical += s.logical_bytes();
  }
  out->set_logical_bytes(logical);
  out->set_vm_count(static_cast<uint32_t>(vms.size()));
  out->set_snapshot_count(snaps.size());
  return Status::OK();
}

class DatastoreService final : public v1::DatastoreService::Service {
 public:
  explicit DatastoreService(ServiceContext& context) : context_(context) {}

  grpc::Status ListDatastores(grpc::ServerContext* ctx, const v1::ListDatastoresRequest* req,
                              v1::ListDatastoresResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(Page page, ReadPage(*req), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto all, SelectDatastores(context_, kAny), ctx, "");
    for (size_t i = page.begin(all.size()); i < page.end(all.size()); ++i) {
      OFFHOST_RPC_ASSIGN_OR_RETURN(auto ds, OpenDatastore(*all[i]), ctx, "");
      FillDatastore(*all[i], *ds, out->add_datastores());
    }
    out->set_next_page_token(NextPageToken(*req, page, all.size()));
    return grpc::Status::OK;
  }

  grpc::Status GetDatastore(grpc::ServerContext* ctx, const v1::GetDatastoreRequest* req,
                            v1::Datastore* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto name, ParseDatastoreName(req->name(), "name"), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto config, FindDatastore(context_, name), ctx,
                                 "DATASTORE_NOT_FOUND");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto ds, OpenDatastore(*config), ctx, "");
    FillDatastore(*config, *ds, out);
    return grpc::Status::OK;
  }

  grpc::Status GetDatastoreStatus(grpc::ServerContext* ctx,
                                  const v1::GetDatastoreStatusRequest* req,
                                  v1::DatastoreStatus* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto name, ParseDatastoreName(req->name(), "name"), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto config, FindDatastore(context_, name), ctx,
                                 "DATASTORE_NOT_FOUND");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto ds, OpenDatastore(*config), ctx, "");
    out->set_datastore(DatastoreResource(config->name));
    if (Status st = FillFilesystem(config->path, out); !st.ok()) return ToGrpc(ctx, st, "");
    if (Status st = FillSnapshotFigures(*ds, out); !st.ok()) return ToGrpc(ctx, st, "");
    if (auto counted = accountant_.Get(*config)) FillSpaceAccounting(*counted, out);
    return grpc::Status::OK;
  }

  grpc::Status StartGc(grpc::ServerContext* ctx, const v1::StartGcRequest* req,
                       v1::Job* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    if (auto st = JobsAvailable(context_, ctx); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(
        auto name, ParseDatastoreName(req->spec().datastore(), "spec.datastore"), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto config, FindDatastore(context_, name), ctx,
                                 "DATASTORE_NOT_FOUND");
    proxy::JobRecord record =
        NewJobRecord(v1::JOB_TYPE_GC, req->spec(), req->request_id(), req->labels(), caller.name);
    record.keys = {{"datastore", config->name}};
    Result<proxy::JobRecord> job =
        context_.jobs->Start(std::move(record), GcJob(*config, req->spec()));
    if (!job.ok() && job.status().code() == StatusCode::kAlreadyExists) {
      return Fail(ctx, grpc::StatusCode::ALREADY_EXISTS, "REQUEST_ID_REUSED",
                  job.status().message());
    }
    if (!job.ok()) return ToGrpc(ctx, job.status(), "");
    FillJob(*job, out);
    return grpc::Status::OK;
  }

  grpc::Status StartVerify(grpc::ServerContext* ctx, const v1::StartVerifyRequest* req,
                           v1::Job* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    if (auto st = JobsAvailable(context_, ctx); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(
        auto name, ParseDatastoreName(req->spec().datastore(), "spec.datastore"), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto config, FindDatastore(context_, name), ctx,
                                 "DATASTORE_NOT_FOUND");
    proxy::JobRecord record = NewJobRecord(v1::JOB_TYPE_VERIFY, req->spec(), req->request_id(),
                                           req->labels(), caller.name);
    record.keys = {{"datastore", config->name}};
    Result<proxy::JobRecord> job =
        context_.jobs->Start(std::move(record), VerifyJob(*config, req->spec().quarantine()));
    if (!job.ok() && job.status().code() == StatusCode::kAlreadyExists) {
      return Fail(ctx, grpc::StatusCode::ALREADY_EXISTS, "REQUEST_ID_REUSED",
                  job.status().message());
    }
    if (!job.ok()) return ToGrpc(ctx, job.status(), "");
    FillJob(*job, out);
    return grpc::Status::OK;
  }

 private:
  ServiceContext& context_;
  SpaceAccountant accountant_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeDatastoreService(ServiceContext& context) {
  return std::make_unique<DatastoreService>(context);
}

}  // namespace offhost::grpcapi
