// offhost snapshots --datastore DIR [--vm NAME] [--json]
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "offhost/storage/datastore.h"

namespace offhost::cli {
namespace {

struct SnapshotsOptions {
  std::string datastore;
  std::string vm;
  bool json = false;
};

nlohmann::json ToJson(const storage::SnapshotRecord& s) {
  nlohmann::json disks = nlohmann::json::array();
  for (const auto& d : s.disks) {
    disks.push_back({{"name", d.name}, {"size", d.size}, {"source", d.source},
                     {"bytes_read", d.bytes_read}, {"new_bytes", d.new_bytes},
                     {"chunks", d.chunks}, {"new_chunks", d.new_chunks},
                     {"zero_bytes", d.zero_bytes}, {"unallocated_bytes", d.unallocated_bytes}});
  }
  return {{"vm", s.vm},           {"snapshot", s.id},
          {"started", s.started}, {"finished", s.finished},
          {"logical_bytes", s.logical_bytes()}, {"bytes_read", s.bytes_read()},
          {"new_bytes", s.new_bytes()}, {"disks", disks}};
}

int RunSnapshots(const SnapshotsOptions& o) {
  if (!o.vm.empty()) {
    Status st = storage::ValidateName("VM", o.vm);
    if (!st.ok()) return ReportError(st);
  }
  auto ds = storage::Datastore::Open(o.datastore, false);
  if (!ds.ok()) return ReportError(ds.status());
  auto list = (*ds)->ListSnapshots(o.vm);
  if (!list.ok()) return ReportError(list.status());
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& s : *list) j.push_back(ToJson(s));
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (list->empty()) {
    std::cout << "no snapshots" << (o.vm.empty() ? "" : " of VM " + o.vm) << " in "
              << o.datastore << "\n";
    return kExitOk;
  }
  size_t w = 8;
  for (const auto& s : *list) w = std::max(w, s.vm.size() + 1 + s.id.size());
  std::cout << std::left << std::setw(static_cast<int>(w)) << "SNAPSHOT" << "  DISKS      SIZE"
            << "        READ         NEW  DURATION\n";
  for (const auto& s : *list) {
    std::string disks;
    for (const auto& d : s.disks) disks += (disks.empty() ? "" : ",") + d.name;
    std::cout << std::left << std::setw(static_cast<int>(w)) << s.vm + "@" + s.id << "  "
              << std::setw(6) << disks << std::right << std::setw(11)
              << HumanBytes(s.logical_bytes()) << " " << std::setw(11)
              << HumanBytes(s.bytes_read()) << " " << std::setw(11) << HumanBytes(s.new_bytes())
              << "  " << HumanDuration(static_cast<double>(s.finished - s.started)) << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddSnapshotsCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<SnapshotsOptions>();
  auto* cmd = app.add_subcommand("snapshots", "List the snapshots in a datastore");
  cmd->add_option("--datastore", o->datastore, "Datastore directory")->required();
  cmd->add_option("--vm", o->vm, "Only this VM");
  cmd->add_flag("--json", o->json, "Print as JSON");
  cmd->callback([run, o] { *run = [o] { return RunSnapshots(*o); }; });
}

}  // namespace offhost::cli
