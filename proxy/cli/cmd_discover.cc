// offhost discover iscsi://[USER@]PORTAL[:PORT] [--json] [iSCSI login options]
// What a SAN portal offers: its targets, their LUNs, the LVM logical volumes on each disk LUN
// (shared LVM), and the URI to back each one up with.
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "iscsi_options.h"
#include "offhost/mount/logical_volumes.h"
#include "offhost/proxy/iscsi_discovery.h"
#include "offhost/snapshot-drivers/iscsi_block_device.h"

namespace offhost::cli {
namespace {

namespace sd = snapshot_drivers;

struct DiscoverOptions {
  std::string portal;
  bool json = false;
  IscsiCliOptions iscsi;
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

int RunDiscover(const DiscoverOptions& o) {
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
  cmd->add_option("portal", o->portal, "iscsi://[USER@]PORTAL[:PORT]")->required();
  cmd->add_flag("--json", o->json, "Print as JSON");
  AddIscsiOptions(cmd, &o->iscsi);
  cmd->callback([run, o] { *run = [o] { return RunDiscover(*o); }; });
}

}  // namespace offhost::cli
