// Verify as a job (DatastoreService.StartVerify): storage::VerifyDatastore, as
// `offhost verify` runs it, with its result as a serialized v1::VerifyResult.
#pragma once

#include "offhost/grpc/service_context.h"
#include "offhost/proxy/job_engine.h"

namespace offhost::grpcapi {

// VerifyDatastore has no way to stop early: a cancelled verify runs to its end, then ends
// CANCELLED.
proxy::JobFn VerifyJob(const DatastoreConfig& datastore, bool quarantine);

}  // namespace offhost::grpcapi
