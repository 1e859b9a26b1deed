// offhost discover iscsi://[USER@]PORTAL[:PORT] [--json] [iSCSI login options]
// offhost discover --host NAME [--server ADDR] [--json]
//   against offhostd: the portal of one of its iscsi hosts, logged in to with the host's
//   configured initiator name and CHAP (InventoryService.DiscoverIscsiTargets)
// What a SAN portal offers: its targets, their LUNs, the LVM logical volumes on each disk LUN
// (shared LVM), and the URI to back each one up with.
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "iscsi_options.h"
#include "offhost/mount/logical_volumes.h"
#include "offhost/proxy/iscsi_discovery.h"
#include "offhost/snapshot-drivers/iscsi_block_device.h"
#include "offhost/v1/inventory.grpc.pb.h"

namespace offhost::cli {
namespace {

namespace sd = snapshot_drivers;

struct DiscoverOptions {
  std::string portal;
  bool json = false;
  IscsiCliOptions iscsi;
  std::string host;  // daemon mode: the daemon's iscsi host
  DaemonOptions daemon;
};

using VolumesByLun = std::map<std::string, std::vector<mount::LogicalVolumeInfo>>;

std::string LvUri(const sd::IscsiLun& l, const mount::LogicalVolumeInfo& v) {
  return proxy::LogicalVolumeUri(l.uri, v);
}

nlohmann::json ToJson(const sd::IscsiTarget& t, const VolumesByLun& volumes) {
  nlohmann::json luns = nlohmann::json::array();
  for (const auto& l : t.luns) {
    nlohmann::json lvs = nlohmann::json::array();
    if (auto it = volumes.find(l.uri); it != volumes.end()) {
      for (const auto& v : it->second) {
        lvs.push_back({{"vg", v.vg},
                       {"lv", v.lv},
                       {"size", v.size},
                       {"uri", LvUri(l, v)},
                       {"unreadable", v.unreadable}});
      }
    }
    luns.push_back({{"lun", l.lun},
                    {"uri", l.uri},
                    {"type", l.device_type},
                    {"vendor", l.vendor},
                    {"product", l.product},
                    {"size", l.size},
                    {"block_size", l.block_size},
                    {"thin", l.thin},
                    {"logical_volumes", lvs}});
  }
  return {{"target", t.name}, {"portals", t.portals}, {"luns", luns}, {"error", t.error}};
}

std::vector<std::string> Row(const sd::IscsiTarget& t, const sd::IscsiLun& l) {
  bool disk = l.device_type == "disk";
  return {t.name,
          std::to_string(l.lun),
          l.device_type,
          disk ? HumanBytes(l.size) : "-",
          l.vendor + " " + l.product,
          disk ? (l.thin ? "yes" : "no") : "-",
          l.uri};
}

void PrintTargets(const std::vector<sd::IscsiTarget>& targets, const VolumesByLun& volumes) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : targets) {
    for (const auto& l : t.luns) {
      rows.push_back(Row(t, l));
      auto it = volumes.find(l.uri);
      if (it == volumes.end()) continue;
      for (const auto& v : it->second) {  // shared LVM: one VM disk per logical volume
        rows.push_back({"", "", "LV", HumanBytes(v.size), v.vg + "/" + v.lv,
                        v.unreadable.empty() ? "" : "not readable: " + v.unreadable,
                        v.unreadable.empty() ? LvUri(l, v) : "-"});
      }
    }
  }
  if (!rows.empty()) {
    PrintTable({"TARGET", "LUN", "TYPE", "SIZE", "VENDOR/PRODUCT", "THIN", "URI"}, rows, {1, 3});
  }
  std::cout.flush();  // the warnings go after the table, not into it
  for (const auto& t : targets) {
    if (!t.error.empty())
      std::cerr << "offhost: warning: target " << t.name << ": " << t.error << "\n";
  }
  if (targets.empty()) std::cout << "the portal offers no targets to this initiator\n";
}

// The daemon's answer in the local shapes, so both modes print the same table and JSON.
void FromProto(const v1::DiscoverIscsiTargetsResponse& r, std::vector<sd::IscsiTarget>* targets,
               VolumesByLun* volumes) {
  for (const auto& t : r.targets()) {
    sd::IscsiTarget& target = targets->emplace_back();
    target.name = t.iqn();
    target.portals.assign(t.portals().begin(), t.portals().end());
    target.error = t.error();
    for (const auto& l : t.luns()) {
      sd::IscsiLun& lun = target.luns.emplace_back();
      lun.lun = static_cast<int>(l.lun());
      lun.uri = l.uri();
      lun.device_type = l.device_type();
      lun.vendor = l.vendor();
      lun.product = l.product();
      lun.size = l.size_bytes();
      lun.block_size = l.block_size_bytes();
      lun.thin = l.thin();
      for (const auto& v : l.logical_volumes()) {
        (*volumes)[l.uri()].push_back(
            {v.volume_group(), v.logical_volume(), v.size_bytes(), v.unreadable()});
      }
    }
  }
}

int DiscoverDaemon(const DiscoverOptions& o) {
  if (!o.portal.empty()) {
    return ReportError(Status::InvalidArgument(
        "give either a PORTAL (discovery from here) or --host NAME (by offhostd), not both"));
  }
  const IscsiCliOptions& i = o.iscsi;
  if (!i.initiator_name.empty() || !i.chap_secret_file.empty() || !i.target_chap_user.empty() ||
      !i.target_chap_secret_file.empty()) {
    return ReportError(Status::InvalidArgument(
        "with --host offhostd logs in with the host's configured initiator name and CHAP; the "
        "iSCSI login options are for discovery from here (give a PORTAL instead)"));
  }
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  auto stub = v1::InventoryService::NewStub((*client)->channel());
  v1::DiscoverIscsiTargetsRequest req;
  req.set_host("hosts/" + o.host);
  v1::DiscoverIscsiTargetsResponse resp;
  auto ctx = (*client)->Context();
  grpc::Status st = stub->DiscoverIscsiTargets(ctx.get(), req, &resp);
  if (!st.ok()) return ReportRpcError(st, *ctx, **client);
  std::vector<sd::IscsiTarget> targets;
  VolumesByLun volumes;
  FromProto(resp, &targets, &volumes);
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& t : targets) j.push_back(ToJson(t, volumes));
    std::cout << j.dump(2) << "\n";
  } else {
    PrintTargets(targets, volumes);
  }
  return kExitOk;
}

int RunDiscover(const DiscoverOptions& o) {
  if (!o.host.empty()) return DiscoverDaemon(o);
  if (!o.daemon.server.empty()) {
    return ReportError(Status::InvalidArgument(
        "--server asks offhostd: name one of its iscsi hosts with --host NAME"));
  }
  if (o.portal.empty()) {
    return ReportError(Status::InvalidArgument(
        "give the portal to discover, iscsi://[USER@]PORTAL[:PORT], or --host NAME for one of "
        "offhostd's iscsi hosts"));
  }
  auto settings = IscsiSettings(o.iscsi);
  if (!settings.ok()) return ReportError(settings.status());
  sd::IscsiCredentials creds = sd::IscsiCredentialsFromSettings(*settings);
  auto found = proxy::DiscoverIscsiPortal(o.portal, creds);
  if (!found.ok()) return ReportError(found.status());
  for (const auto& w : found->warnings) std::cerr << "offhost: warning: " << w << "\n";
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& t : found->targets) j.push_back(ToJson(t, found->volumes));
    std::cout << j.dump(2) << "\n";
  } else {
    PrintTargets(found->targets, found->volumes);
  }
  return kExitOk;
}

}  // namespace

void AddDiscoverCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<DiscoverOptions>();
  auto* cmd = app.add_subcommand(
      "discover", "List the targets and LUNs an iSCSI portal offers (SendTargets discovery)");
  cmd->add_option("portal", o->portal, "iscsi://[USER@]PORTAL[:PORT] (discovery from here)");
  cmd->add_option("--host", o->host,
                  "One of offhostd's iscsi hosts: the daemon logs in with its configured "
                  "initiator name and CHAP");
  AddDaemonOptions(cmd, &o->daemon);
  cmd->add_flag("--json", o->json, "Print as JSON");
  AddIscsiOptions(cmd, &o->iscsi);
  cmd->callback([run, o] { *run = [o] { return RunDiscover(*o); }; });
}

}  // namespace offhost::cli
