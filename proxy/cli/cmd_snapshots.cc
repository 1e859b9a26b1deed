// offhost snapshots --datastore DIR [--vm NAME] [--json]
// offhost snapshots [--server ADDR] [--vm NAME] [--json]      (against offhostd)
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "offhost/storage/datastore.h"
#include "offhost/v1/catalog.grpc.pb.h"

namespace offhost::cli {
namespace {

struct SnapshotsOptions {
  std::string datastore;
  std::string vm;
  std::string config;  // VM@SNAPSHOT whose stored VM configuration to print
  bool json = false;
  DaemonOptions daemon;
};

Result<std::pair<std::string, std::string>> SplitConfigRef(const std::string& ref) {
  auto at = ref.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == ref.size()) {
    return Status::InvalidArgument("--config '" + ref + "' is not VM@SNAPSHOT (e.g. web01@latest)");
  }
  return std::make_pair(ref.substr(0, at), ref.substr(at + 1));
}

// The same output and error in both modes.
int PrintVmConfig(const std::string& config, const std::string& vm, const std::string& id,
                  const std::string& driver) {
  if (config.empty()) {
    return ReportError(Status::NotFound(
        vm + "@" + id + " has no stored VM configuration (its driver, " + driver + ", has none)"));
  }
  std::cout << config << (config.ends_with("\n") ? "" : "\n");
  return kExitOk;
}

int PrintConfig(storage::Datastore& ds, const std::string& ref) {
  auto split = SplitConfigRef(ref);
  if (!split.ok()) return ReportError(split.status());
  auto snap = ds.FindSnapshot(split->first, split->second);
  if (!snap.ok()) return ReportError(snap.status());
  auto config = ds.GetVmConfig(*snap);
  if (!config.ok()) return ReportError(config.status());
  return PrintVmConfig(*config, snap->vm, snap->id, snap->meta.driver);
}

// GetSnapshot with SNAPSHOT_VIEW_FULL carries the stored configuration (Snapshot.vm_config).
int PrintConfigFromDaemon(const DaemonClient& client, const std::string& ref) {
  auto split = SplitConfigRef(ref);
  if (!split.ok()) return ReportError(split.status());
  int exit = kExitOk;
  auto name = FindSnapshotResource(client, split->first, split->second, &exit);
  if (!name.ok()) return exit;
  auto stub = v1::CatalogService::NewStub(client.channel());
  v1::GetSnapshotRequest req;
  req.set_name(*name);
  req.set_view(v1::SNAPSHOT_VIEW_FULL);
  v1::Snapshot snap;
  auto ctx = client.Context();
  grpc::Status st = stub->GetSnapshot(ctx.get(), req, &snap);
  if (!st.ok()) return ReportRpcError(st, *ctx, client);
  storage::SnapshotRecord rec = FromProto(snap);
  return PrintVmConfig(snap.vm_config(), rec.vm, rec.id, rec.meta.driver);
}

nlohmann::json ToJson(const storage::SnapshotRecord& s) {
  nlohmann::json disks = nlohmann::json::array();
  for (const auto& d : s.disks) {
    disks.push_back({{"name", d.name},
                     {"size", d.size},
                     {"source", d.source},
                     {"bytes_read", d.bytes_read},
                     {"new_bytes", d.new_bytes},
                     {"chunks", d.chunks},
                     {"new_chunks", d.new_chunks},
                     {"zero_bytes", d.zero_bytes},
                     {"unallocated_bytes", d.unallocated_bytes},
                     {"incremental", d.incremental},
                     {"full_reason", d.full_reason},
                     {"dirty_bytes", d.dirty_bytes},
                     {"reused_bytes", d.reused_bytes}});
  }
  return {{"vm", s.vm},
          {"snapshot", s.id},
          {"vm_uuid", s.meta.vm_uuid},
          {"driver", s.meta.driver},
          {"consistency", s.meta.consistency},
          {"consistency_reason", s.meta.consistency_reason},
          {"checkpoint", s.meta.checkpoint},
          {"parent", s.meta.parent},
          {"started", s.started},
          {"finished", s.finished},
          {"logical_bytes", s.logical_bytes()},
          {"bytes_read", s.bytes_read()},
          {"new_bytes", s.new_bytes()},
          {"disks", disks}};
}

// The same table and JSON in both modes; `where` names the datastore or the daemon.
int PrintSnapshots(const std::vector<storage::SnapshotRecord>& list, const SnapshotsOptions& o,
                   const std::string& where) {
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& s : list) j.push_back(ToJson(s));
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (list.empty()) {
    std::cout << "no snapshots" << (o.vm.empty() ? "" : " of VM " + o.vm) << " in " << where
              << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : list) {
    std::string disks;
    bool any_inc = false, any_full = false;
    for (const auto& d : s.disks) {
      disks += (disks.empty() ? "" : ",") + d.name;
      (d.incremental ? any_inc : any_full) = true;
    }
    std::string type = any_inc && any_full ? "mixed" : any_inc ? "incremental" : "full";
    rows.push_back({s.vm + "@" + s.id, type, s.meta.consistency, disks,
                    HumanBytes(s.logical_bytes()), HumanBytes(s.bytes_read()),
                    HumanBytes(s.new_bytes()),
                    HumanDuration(static_cast<double>(s.finished - s.started))});
  }
  PrintTable({"SNAPSHOT", "TYPE", "CONSISTENCY", "DISKS", "SIZE", "READ", "NEW", "DURATION"}, rows,
             {4, 5, 6, 7});
  return kExitOk;
}

int RunLocal(const SnapshotsOptions& o) {
  auto ds = storage::Datastore::Open(o.datastore, false);
  if (!ds.ok()) return ReportError(ds.status());
  if (!o.config.empty()) return PrintConfig(**ds, o.config);
  auto list = (*ds)->ListSnapshots(o.vm);
  if (!list.ok()) return ReportError(list.status());
  return PrintSnapshots(*list, o, o.datastore);
}

// Every page of ListSnapshots over all of the daemon's datastores.
int RunDaemon(const SnapshotsOptions& o) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  if (!o.config.empty()) return PrintConfigFromDaemon(**client, o.config);
  auto stub = v1::CatalogService::NewStub((*client)->channel());
  v1::ListSnapshotsRequest req;
  req.set_parent("datastores/-/vms/" + (o.vm.empty() ? std::string("-") : o.vm));
  req.set_page_size(1000);
  std::vector<storage::SnapshotRecord> list;
  do {
    v1::ListSnapshotsResponse resp;
    auto ctx = (*client)->Context();
    grpc::Status st = stub->ListSnapshots(ctx.get(), req, &resp);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    for (const auto& s : resp.snapshots()) list.push_back(FromProto(s));
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return PrintSnapshots(list, o, "offhostd at " + (*client)->server());
}

int RunSnapshots(const SnapshotsOptions& o) {
  if (!o.vm.empty()) {
    Status st = storage::ValidateName("VM", o.vm);
    if (!st.ok()) return ReportError(st);
  }
  auto daemon = UseDaemon(o.daemon, o.datastore);
  if (!daemon.ok()) return ReportError(daemon.status());
  return *daemon ? RunDaemon(o) : RunLocal(o);
}

}  // namespace

void AddSnapshotsCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<SnapshotsOptions>();
  auto* cmd = app.add_subcommand("snapshots", "List the snapshots in a datastore");
  cmd->add_option("--datastore", o->datastore, "Datastore directory (local mode)");
  AddDaemonOptions(cmd, &o->daemon);
  cmd->add_option("--vm", o->vm, "Only this VM");
  cmd->add_option("--config", o->config,
                  "Print the VM configuration stored with VM@SNAPSHOT (domain XML, ...)");
  cmd->add_flag("--json", o->json, "Print as JSON");
  cmd->callback([run, o] { *run = [o] { return RunSnapshots(*o); }; });
}

}  // namespace offhost::cli
