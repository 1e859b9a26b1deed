// offhost.v1 JobsService (jobs.proto): the daemon's jobs, from its JobEngine.
#include <google/protobuf/util/time_util.h>

#include "jobs.h"
#include "names.h"
#include "offhost/v1/jobs.grpc.pb.h"
#include "pagination.h"
#include "services.h"
#include "status_map.h"

namespace offhost::grpcapi {
namespace {

using google::protobuf::util::TimeUtil;

Result<proxy::JobFilter> ReadFilter(const v1::ListJobsRequest& req) {
  proxy::JobFilter f;
  for (int t : req.types()) f.types.push_back(JobTypeWord(static_cast<v1::JobType>(t)));
  for (int s : req.states()) f.states.push_back(static_cast<proxy::JobState>(s));
  // A backup group ("datastores/{ds}/vms/{vm}") or an inventory VM, whose host may be "-".
  if (req.vm().starts_with("datastores/")) {
    f.keys["group"] = req.vm();
  } else if (req.vm().starts_with("hosts/-/vms/")) {
    f.keys["vm_id"] = req.vm().substr(std::string_view("hosts/-/vms/").size());
  } else if (!req.vm().empty()) {
    f.keys["vm"] = req.vm();
  }
  if (!req.datastore().empty()) {
    OFFHOST_ASSIGN_OR_RETURN(std::string ds, ParseDatastoreName(req.datastore(), "datastore"));
    f.keys["datastore"] = ds;
  }
  f.labels.insert(req.labels().begin(), req.labels().end());
  f.creator = req.creator();
  if (req.has_create_time_from()) {
    f.create_from_ms = TimeUtil::TimestampToMilliseconds(req.create_time_from());
  }
  if (req.has_create_time_before()) {
    f.create_before_ms = TimeUtil::TimestampToMilliseconds(req.create_time_before());
  }
  return f;
}

class JobsService final : public v1::JobsService::Service {
 public:
  explicit JobsService(ServiceContext& context) : context_(context) {}

  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                      v1::Job* out) override {
    Principal caller;
    if (auto st = Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(std::string id, ParseJobName(req->name(), "name"), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(proxy::JobRecord job, context_.jobs->Get(id), ctx,
                                 "JOB_NOT_FOUND");
    FillJob(job, out);
    return grpc::Status::OK;
  }

  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* out) override {
    Principal caller;
    if (auto st = Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(Page page, ReadPage(*req), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(proxy::JobFilter filter, ReadFilter(*req), ctx, "");
    std::vector<proxy::JobRecord> jobs = context_.jobs->List(filter);
    for (size_t i = page.begin(jobs.size()); i < page.end(jobs.size()); ++i) {
      FillJob(jobs[i], out->add_jobs());
    }
    out->set_next_page_token(NextPageToken(*req, page, jobs.size()));
    return grpc::Status::OK;
  }

  grpc::Status WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::JobEvent>* writer) override {
    Principal caller;
    if (auto st = Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(std::string id, ParseJobName(req->name(), "name"), ctx, "");
    Status st = context_.jobs->Watch(
        id, req->after_sequence(),
        [&](const proxy::JobEvent& event, const proxy::JobRecord& job) {
          v1::JobEvent out;
          FillJobEvent(event, job, &out);
          return writer->Write(out);  // false: the client is gone
        },
        [ctx] { return ctx->IsCancelled(); });
    if (st.code() == StatusCode::kUnavailable) {
      return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "SHUTTING_DOWN",
                  st.message() + "; the job ends INTERRUPTED, as GetJob shows after the restart");
    }
    return ToGrpc(ctx, st, "JOB_NOT_FOUND");
  }

  grpc::Status CancelJob(grpc::ServerContext* ctx, const v1::CancelJobRequest* req,
                         v1::Job* out) override {
    Principal caller;
    if (auto st = Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(std::string id, ParseJobName(req->name(), "name"), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(proxy::JobRecord job, context_.jobs->Cancel(id, caller.name), ctx,
                                 "JOB_NOT_FOUND");
    FillJob(job, out);
    return grpc::Status::OK;
  }

 private:
  grpc::Status Check(grpc::ServerContext* ctx, Role needed, Principal* caller) {
    if (auto st = context_.authorizer->Check(ctx, needed, caller); !st.ok()) return st;
    return JobsAvailable(context_, ctx);
  }

  ServiceContext& context_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeJobsService(ServiceContext& context) {
  return std::make_unique<JobsService>(context);
}

}  // namespace offhost::grpcapi
