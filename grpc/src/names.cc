#include "names.h"

#include <vector>

#include "offhost/storage/datastore.h"

namespace offhost::grpcapi {
namespace {

std::vector<std::string> Split(const std::string& name) {
  std::vector<std::string> parts;
  size_t pos = 0;
  for (;;) {
    size_t slash = name.find('/', pos);
    parts.push_back(name.substr(pos, slash - pos));
    if (slash == std::string::npos) return parts;
    pos = slash + 1;
  }
}

Status Malformed(const std::string& field, const std::string& name, const std::string& form) {
  return Status::InvalidArgument(field + ": '" + name + "' is not a name of the form " + form);
}

// Datastore names come from the daemon's configuration and VM names from the datastore:
// both follow storage::ValidateName, so anything else cannot name an existing object.
Status CheckPart(const std::string& what, const std::string& part, const std::string& field) {
  if (part == kAny) return Status::OK();
  Status st = storage::ValidateName(what, part);
  return st.ok() ? st : Status::InvalidArgument(field + ": " + st.message());
}

}  // namespace

Result<std::string> ParseDatastoreName(const std::string& name, const std::string& field) {
  auto p = Split(name);
  if (p.size() != 2 || p[0] != "datastores") return Malformed(field, name, "datastores/{ds}");
  OFFHOST_RETURN_IF_ERROR(CheckPart("datastore", p[1], field));
  return p[1];
}

Result<GroupName> ParseGroupName(const std::string& name, const std::string& field) {
  auto p = Split(name);
  if (p.size() != 4 || p[0] != "datastores" || p[2] != "vms") {
    return Malformed(field, name, "datastores/{ds}/vms/{vm}");
  }
  OFFHOST_RETURN_IF_ERROR(CheckPart("datastore", p[1], field));
  OFFHOST_RETURN_IF_ERROR(CheckPart("VM", p[3], field));
  return GroupName{p[1], p[3]};
}

Result<SnapshotName> ParseSnapshotName(const std::string& name, const std::string& field) {
  auto p = Split(name);
  if (p.size() != 6 || p[0] != "datastores" || p[2] != "vms" || p[4] != "snapshots" ||
      p[5].empty() || p[1] == kAny || p[3] == kAny) {
    return Malformed(field, name, "datastores/{ds}/vms/{vm}/snapshots/{id} ({id} may be latest)");
  }
  OFFHOST_RETURN_IF_ERROR(CheckPart("datastore", p[1], field));
  OFFHOST_RETURN_IF_ERROR(CheckPart("VM", p[3], field));
  return SnapshotName{p[1], p[3], p[5]};
}

std::string DatastoreResource(const std::string& ds) { return "datastores/" + ds; }

std::string GroupResource(const std::string& ds, const std::string& vm) {
  return DatastoreResource(ds) + "/vms/" + vm;
}

std::string SnapshotResource(const std::string& ds, const std::string& vm, const std::string& id) {
  return GroupResource(ds, vm) + "/snapshots/" + id;
}

}  // namespace offhost::grpcapi
