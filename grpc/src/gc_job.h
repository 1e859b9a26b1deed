// Garbage collection as a job (DatastoreService.StartGc): storage::CollectGarbage, as
// `offhost gc` runs it, with its result as a serialized v1::GcResult.
#pragma once

#include "offhost/grpc/service_context.h"
#include "offhost/proxy/job_engine.h"
#include "offhost/v1/jobs.pb.h"

namespace offhost::grpcapi {

// Cancelling stops the sweep at the next chunk directory (what was removed stays removed).
proxy::JobFn GcJob(const DatastoreConfig& datastore, const v1::GcSpec& spec);

}  // namespace offhost::grpcapi
