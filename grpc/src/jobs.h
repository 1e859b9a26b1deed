// Jobs as offhost.v1 shows them (jobs.proto), from the engine's records (proxy/job_engine.h):
// the engine keeps the request's spec and the job's result as serialized protos, so a job
// reads back exactly as it was asked for.
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "offhost/grpc/service_context.h"
#include "offhost/proxy/job_engine.h"
#include "offhost/v1/jobs.pb.h"

namespace offhost::grpcapi {

// The engine's type words: "backup", "disk_restore", "file_restore", "verify".
std::string JobTypeWord(v1::JobType type);
v1::JobType JobTypeOf(const std::string& word);

// "jobs/{job}" → {job}; InvalidArgument naming `field`.
Result<std::string> ParseJobName(const std::string& name, const std::string& field);
std::string JobResource(const std::string& id);

void FillJob(const proxy::JobRecord& record, v1::Job* out);
// `job`: the job as it was when the event was sent (a state change carries it).
void FillJobEvent(const proxy::JobEvent& event, const proxy::JobRecord& job, v1::JobEvent* out);

// The record a Start* RPC hands the engine: type, spec, request id, labels, creator.
proxy::JobRecord NewJobRecord(v1::JobType type, const google::protobuf::Message& spec,
                              const std::string& request_id,
                              const google::protobuf::Map<std::string, std::string>& labels,
                              const std::string& creator);

// UNAVAILABLE when the daemon runs no job engine.
grpc::Status JobsAvailable(const ServiceContext& context, grpc::ServerContext* ctx);

// While it lives, hands `poll()` to the job's SetProgress twice a second: the pipelines count
// into atomics, and the engine thins what it logs.
class ProgressTicker {
 public:
  ProgressTicker(proxy::JobControl& control, std::function<proxy::JobProgress()> poll);
  ~ProgressTicker();  // one last report, so the job ends with its final counters

 private:
  proxy::JobControl& control_;
  std::function<proxy::JobProgress()> poll_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace offhost::grpcapi
