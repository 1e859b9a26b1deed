#include "inventory.h"

namespace offhost::grpcapi {

const HostConfig* FindHost(const ServiceContext& context, const std::string& name) {
  for (const HostConfig& h : context.hosts) {
    if (h.name == name) return &h;
  }
  return nullptr;
}

const VmConfig* FindVm(const ServiceContext& context, const std::string& name) {
  for (const VmConfig& v : context.vms) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

bool SplitVmName(const std::string& name, std::string* host, std::string* vm) {
  constexpr std::string_view kHosts = "hosts/";
  size_t slash = name.find("/vms/");
  if (!name.starts_with(kHosts) || slash == std::string::npos) return false;
  *host = name.substr(kHosts.size(), slash - kHosts.size());
  *vm = name.substr(slash + 5);
  return !host->empty() && host->find('/') == std::string::npos && !vm->empty() &&
         vm->find('/') == std::string::npos;
}

bool SplitHostName(const std::string& name, std::string* host) {
  constexpr std::string_view kHosts = "hosts/";
  if (!name.starts_with(kHosts)) return false;
  *host = name.substr(kHosts.size());
  return !host->empty() && host->find('/') == std::string::npos;
}

std::string HostResource(const std::string& host) { return "hosts/" + host; }

std::string VmResource(const std::string& host, const std::string& vm) {
  return HostResource(host) + "/vms/" + vm;
}

snapshot_drivers::SnapshotRequest DriverRequest(const HostConfig& host, const VmConfig& vm) {
  snapshot_drivers::SnapshotRequest req;
  req.settings = host.settings;
  for (const auto& [k, v] : vm.settings) req.settings[k] = v;
  auto domain = req.settings.find("domain");
  req.vm = domain != req.settings.end() ? domain->second : vm.name;
  if (domain != req.settings.end()) req.settings.erase(domain);
  return req;
}

std::string DefaultDatastore(const ServiceContext& context, const HostConfig& host,
                             const VmConfig* vm) {
  if (vm != nullptr && !vm->datastore.empty()) return vm->datastore;
  if (!host.datastore.empty()) return host.datastore;
  if (context.datastores.size() == 1) return context.datastores[0].name;
  return "";
}

}  // namespace offhost::grpcapi
