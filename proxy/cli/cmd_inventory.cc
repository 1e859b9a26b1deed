// offhost hosts [--server ADDR] [--check] [--json]
//   the hypervisor hosts (and SAN portals, image folders, NBD exports) of offhostd's inventory
// offhost vms [--server ADDR] [--host NAME] [--uuid UUID] [--name NAME] [--disks] [--json]
//   their VMs; --disks asks each VM's driver now for its disks (sizes, formats, whether the
//   next backup can be incremental)
// The inventory is offhostd's configuration ([[host]], [[vm]]): there is no local mode.
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "offhost/v1/inventory.grpc.pb.h"

namespace offhost::cli {
namespace {

struct InventoryOptions {
  DaemonOptions daemon;
  bool json = false;
  bool check = false;  // hosts: HOST_VIEW_FULL
  bool disks = false;  // vms: VM_VIEW_FULL
  std::string host, uuid, name;
};

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string HostState(const v1::Host& h) {
  switch (h.status().state()) {
    case v1::HostStatus::STATE_REACHABLE:
      return "reachable";
    case v1::HostStatus::STATE_UNREACHABLE:
      return "unreachable: " + h.status().message();
    default:
      return h.status().message().empty() ? "unknown" : "unknown: " + h.status().message();
  }
}

std::string PowerName(v1::Vm::PowerState p) {
  switch (p) {
    case v1::Vm::POWER_STATE_RUNNING:
      return "running";
    case v1::Vm::POWER_STATE_PAUSED:
      return "paused";
    case v1::Vm::POWER_STATE_STOPPED:
      return "stopped";
    default:
      return "-";
  }
}

int ListHosts(const InventoryOptions& o) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  auto stub = v1::InventoryService::NewStub((*client)->channel());
  v1::ListHostsRequest req;
  req.set_page_size(1000);
  req.set_view(o.check ? v1::HOST_VIEW_FULL : v1::HOST_VIEW_BASIC);
  std::vector<v1::Host> hosts;
  do {
    v1::ListHostsResponse resp;
    auto ctx = (*client)->Context();
    grpc::Status st = stub->ListHosts(ctx.get(), req, &resp);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    hosts.insert(hosts.end(), resp.hosts().begin(), resp.hosts().end());
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& h : hosts) j.push_back(ProtoJson(h));
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (hosts.empty()) {
    std::cout << "no hosts in offhostd at " << (*client)->server()
              << " (its configuration has no [[host]])\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& h : hosts) {
    std::vector<std::string> row{LastPart(h.name()), DriverName(h.driver()), OrDash(h.address()),
                                 std::to_string(h.vm_count()),
                                 OrDash(LastPart(h.default_datastore()))};
    if (o.check) row.push_back(HostState(h));
    rows.push_back(std::move(row));
  }
  std::vector<std::string> headers{"HOST", "DRIVER", "ADDRESS", "VMS", "DATASTORE"};
  if (o.check) headers.push_back("STATUS");
  PrintTable(headers, rows, {3});
  return kExitOk;
}

// The next backup of a disk, as the driver sees it now.
std::string NextBackup(const v1::VmDisk& d) {
  return d.incremental_possible() ? "incremental" : "full (" + d.full_reason() + ")";
}

int ListVms(const InventoryOptions& o) {
  if (!o.host.empty()) {
    if (Status st = storage::ValidateName("host", o.host); !st.ok()) return ReportError(st);
  }
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  auto stub = v1::InventoryService::NewStub((*client)->channel());
  v1::ListVmsRequest req;
  req.set_parent("hosts/" + (o.host.empty() ? std::string("-") : o.host));
  req.set_page_size(1000);
  req.set_view(o.disks ? v1::VM_VIEW_FULL : v1::VM_VIEW_BASIC);
  req.set_uuid(o.uuid);
  req.set_hypervisor_name(o.name);
  std::vector<v1::Vm> vms;
  do {
    v1::ListVmsResponse resp;
    auto ctx = (*client)->Context();
    grpc::Status st = stub->ListVms(ctx.get(), req, &resp);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    vms.insert(vms.end(), resp.vms().begin(), resp.vms().end());
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  // A VM whose driver could not describe it is shown with the reason; the others are listed.
  for (const auto& vm : vms) {
    if (!vm.inventory_error().empty()) {
      std::cerr << "offhost: warning: VM " << vm.vm_id() << ": " << vm.inventory_error() << "\n";
    }
  }
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& vm : vms) j.push_back(ProtoJson(vm));
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (vms.empty()) {
    std::cout << "no VMs" << (o.host.empty() ? "" : " of host " + o.host)
              << (o.uuid.empty() && o.name.empty() ? "" : " match") << " in offhostd at "
              << (*client)->server() << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  if (!o.disks) {
    for (const auto& vm : vms) {
      std::string latest = vm.latest_snapshot().empty() ? "-" : LastPart(vm.latest_snapshot());
      rows.push_back({vm.vm_id(), LastPart(vm.host()), DriverName(vm.driver()), OrDash(vm.uuid()),
                      OrDash(LastPart(vm.default_datastore())), latest});
    }
    PrintTable({"VM", "HOST", "DRIVER", "UUID", "DATASTORE", "LATEST"}, rows, {});
    return kExitOk;
  }
  // One row per disk; a VM that could not be described gets one row with the error.
  for (const auto& vm : vms) {
    std::vector<std::string> head{vm.vm_id(), LastPart(vm.host()), DriverName(vm.driver()),
                                  PowerName(vm.power_state())};
    if (!vm.inventory_error().empty()) {
      head.insert(head.end(), {"-", "-", "-", "error: " + vm.inventory_error()});
      rows.push_back(std::move(head));
      continue;
    }
    for (const auto& d : vm.disks()) {
      std::vector<std::string> row = head;
      row.insert(row.end(),
                 {d.name(), HumanBytes(d.size_bytes()), OrDash(d.format()), NextBackup(d)});
      rows.push_back(std::move(row));
    }
    for (const auto& x : vm.excluded_disks()) {
      std::vector<std::string> row = head;
      row.insert(row.end(), {x.name(), "-", "-", "not backed up: " + x.reason()});
      rows.push_back(std::move(row));
    }
  }
  PrintTable({"VM", "HOST", "DRIVER", "POWER", "DISK", "SIZE", "FORMAT", "NEXT BACKUP"}, rows, {5});
  return kExitOk;
}

}  // namespace

void AddInventoryCommands(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<InventoryOptions>();
  auto* hosts = app.add_subcommand("hosts", "List offhostd's hypervisor hosts (its inventory)");
  AddDaemonOptions(hosts, &o->daemon);
  hosts->add_flag("--check", o->check, "Contact each host now and show whether it answers");
  hosts->add_flag("--json", o->json, "Print the hosts as JSON (the offhost.v1 Host messages)");
  hosts->callback([run, o] { *run = [o] { return ListHosts(*o); }; });

  auto* vms = app.add_subcommand("vms", "List the VMs of offhostd's inventory");
  AddDaemonOptions(vms, &o->daemon);
  vms->add_option("--host", o->host, "Only the VMs of this host");
  vms->add_option("--uuid", o->uuid, "Only the VM with this hypervisor UUID");
  vms->add_option("--name", o->name, "Only the VM with this name (offhost's or the hypervisor's)");
  vms->add_flag("--disks", o->disks,
                "Ask each VM's driver now for its disks: size, format, next backup full or "
                "incremental");
  vms->add_flag("--json", o->json, "Print the VMs as JSON (the offhost.v1 Vm messages)");
  vms->callback([run, o] { *run = [o] { return ListVms(*o); }; });
}

}  // namespace offhost::cli
