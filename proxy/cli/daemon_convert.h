// offhost.v1 messages turned into the structs the local mode prints, so both modes share one
// table and one JSON form per command.
#pragma once

#include <google/protobuf/message.h>

#include <nlohmann/json.hpp>
#include <string>

#include "daemon_client.h"
#include "offhost/mount/guest_files.h"
#include "offhost/storage/catalog.h"
#include "offhost/storage/datastore.h"
#include "offhost/v1/catalog.pb.h"

namespace offhost::cli {

// "nbd", "libvirt", ... for the API's Driver enum.
std::string DriverName(v1::Driver d);

// The proto3 JSON mapping with the .proto's field names, as grpcurl prints it: what --json
// prints for daemon resources that have no local-mode twin (jobs, hosts, VMs).
nlohmann::json ProtoJson(const google::protobuf::Message& m);

// The last part of a resource name: "datastores/main/vms/web01" → "web01".
std::string LastPart(const std::string& name);

storage::SnapshotRecord FromProto(const v1::Snapshot& s);
mount::FileInfo ToGuestFile(const v1::FileInfo& f);
storage::CatalogEntry ToCatalogEntry(const v1::FileInfo& f);

// The resource name of VM@SNAPSHOT (SNAPSHOT may be "latest") in whichever of the daemon's
// datastores holds it; on failure the error is already reported and `*exit` set.
Result<std::string> FindSnapshotResource(const DaemonClient& client, const std::string& vm,
                                         const std::string& snapshot, int* exit);

}  // namespace offhost::cli
