// The daemon's inventory ([[host]], [[vm]] of its configuration) as the services look it up:
// by name, by resource name, with the settings a driver gets and the datastore a VM's backups
// go to. Shared by InventoryService and BackupService.
#pragma once

#include <string>

#include "offhost/grpc/service_context.h"
#include "offhost/snapshot-drivers/driver.h"

namespace offhost::grpcapi {

const HostConfig* FindHost(const ServiceContext& context, const std::string& name);
const VmConfig* FindVm(const ServiceContext& context, const std::string& name);

// "hosts/{host}/vms/{vm}" → {host, vm}; {host} may be "-". False when malformed.
bool SplitVmName(const std::string& name, std::string* host, std::string* vm);
// "hosts/{host}" → {host}; {host} may be "-". False when malformed.
bool SplitHostName(const std::string& name, std::string* host);

std::string HostResource(const std::string& host);
std::string VmResource(const std::string& host, const std::string& vm);

// What the VM's driver is asked with: the host's settings with the VM's over them, and the VM
// as the hypervisor names it (the "domain" setting, else its vm_id).
snapshot_drivers::SnapshotRequest DriverRequest(const HostConfig& host, const VmConfig& vm);

// Where the VM's backups go unless a request names a datastore: the VM's, else its host's,
// else the only datastore configured; empty when none of these gives one.
std::string DefaultDatastore(const ServiceContext& context, const HostConfig& host,
                             const VmConfig* vm);

}  // namespace offhost::grpcapi
