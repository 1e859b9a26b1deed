#include "datastores.h"

#include <algorithm>

#include "names.h"

namespace offhost::grpcapi {

Result<const DatastoreConfig*> FindDatastore(const ServiceContext& context, const std::string& ds) {
  std::string known;
  for (const auto& d : context.datastores) {
    if (d.name == ds) return &d;
    known += (known.empty() ? "" : ", ") + DatastoreResource(d.name);
  }
  return Status::NotFound("no datastore '" + ds + "' is configured in this daemon; configured: " +
                          (known.empty() ? "none" : known));
}

Result<std::vector<const DatastoreConfig*>> SelectDatastores(const ServiceContext& context,
                                                             const std::string& ds) {
  std::vector<const DatastoreConfig*> out;
  if (ds != kAny) {
    OFFHOST_ASSIGN_OR_RETURN(const DatastoreConfig* one, FindDatastore(context, ds));
    out.push_back(one);
    return out;
  }
  for (const auto& d : context.datastores) out.push_back(&d);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->name < b->name; });
  return out;
}

Result<std::unique_ptr<storage::Datastore>> OpenDatastore(const DatastoreConfig& config) {
  auto ds = storage::Datastore::Open(config.path, /*for_writing=*/false);
  if (!ds.ok()) {
    return Status::Unavailable("datastore " + DatastoreResource(config.name) +
                               " cannot be opened: " + ds.status().message());
  }
  return ds;
}

}  // namespace offhost::grpcapi
