// The datastores a ServiceContext configures, addressed by their API names and opened
// read-only for each request: storage::Datastore opens its index per call anyway, and a
// request holding nothing between calls needs no locking across the server's threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "offhost/grpc/service_context.h"
#include "offhost/storage/datastore.h"

namespace offhost::grpcapi {

// The configured datastore `ds`; NotFound naming the configured ones.
Result<const DatastoreConfig*> FindDatastore(const ServiceContext& context, const std::string& ds);
// `ds`, or for "-" every configured datastore, ordered by name.
Result<std::vector<const DatastoreConfig*>> SelectDatastores(const ServiceContext& context,
                                                             const std::string& ds);
// Unavailable when its directory cannot be opened (unmounted, damaged configuration file).
Result<std::unique_ptr<storage::Datastore>> OpenDatastore(const DatastoreConfig& config);

}  // namespace offhost::grpcapi
