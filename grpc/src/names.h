// Resource names of offhost.v1 (docs/api.md "Resource names"): parsing what a request names
// and formatting what a response names.
#pragma once

#include <string>

#include "offhost/common/status.h"

namespace offhost::grpcapi {

// "-" in a name: any datastore or any VM, where the RPC allows it.
inline constexpr const char* kAny = "-";

struct GroupName {
  std::string datastore, vm;
};
struct SnapshotName {
  std::string datastore, vm, id;  // id may be "latest"
};

// "datastores/{ds}". InvalidArgument names `field` and shows the expected form.
Result<std::string> ParseDatastoreName(const std::string& name, const std::string& field);
// "datastores/{ds}/vms/{vm}"; {ds} and {vm} are checked as names but may be "-".
Result<GroupName> ParseGroupName(const std::string& name, const std::string& field);
// "datastores/{ds}/vms/{vm}/snapshots/{id}".
Result<SnapshotName> ParseSnapshotName(const std::string& name, const std::string& field);

std::string DatastoreResource(const std::string& ds);
std::string GroupResource(const std::string& ds, const std::string& vm);
std::string SnapshotResource(const std::string& ds, const std::string& vm, const std::string& id);

}  // namespace offhost::grpcapi
