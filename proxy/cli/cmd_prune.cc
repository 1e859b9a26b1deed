// offhost prune --datastore DIR [--vm NAME] --keep-last N --keep-daily N ... [--dry-run] [--json]
// Removes the snapshots a retention policy does not keep (docs/retention.md) and says what it
// kept and why. Chunks no snapshot uses any more are left for garbage collection (`offhost gc`),
// or collected right after with --gc.
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "gc_report.h"
#include "offhost/storage/datastore.h"
#include "offhost/storage/retention.h"

namespace offhost::cli {
namespace {

struct PruneOptions {
  std::string datastore;
  std::string vm;
  storage::RetentionPolicy policy;
  bool dry_run = false;
  bool json = false;
  bool gc = false;  // garbage collection right after (a dry run with --dry-run)
};

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

void PrintDecisions(const std::map<std::string, std::vector<storage::RetentionDecision>>& by_vm,
                    bool dry_run) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& [vm, decisions] : by_vm) {
    for (const auto& d : decisions) {
      rows.push_back({vm + "@" + d.snapshot.id,
                      d.keep ? "keep" : (dry_run ? "would remove" : "removed"),
                      d.keep ? Join(d.reasons) : "kept by no rule"});
    }
  }
  PrintTable({"SNAPSHOT", "ACTION", "WHY"}, rows, {});
  for (const auto& [vm, decisions] : by_vm) {
    size_t kept = 0;
    for (const auto& d : decisions) kept += d.keep ? 1 : 0;
    std::cout << vm << ": " << kept << " kept, " << decisions.size() - kept
              << (dry_run ? " to remove (dry run: nothing removed)" : " removed") << "\n";
  }
}

nlohmann::json ToJson(const std::map<std::string, std::vector<storage::RetentionDecision>>& by_vm,
                      bool dry_run) {
  nlohmann::json out = {{"dry_run", dry_run}, {"snapshots", nlohmann::json::array()}};
  for (const auto& [vm, decisions] : by_vm) {
    for (const auto& d : decisions) {
      out["snapshots"].push_back(
          {{"vm", vm}, {"snapshot", d.snapshot.id}, {"keep", d.keep}, {"reasons", d.reasons}});
    }
  }
  return out;
}

int RunPrune(const PruneOptions& o) {
  if (o.datastore.empty()) {
    return ReportError(Status::InvalidArgument(
        "prune works on a datastore directory: give --datastore DIR (through offhostd, "
        "`offhost schedule prune VM` applies the VM's configured retention policy)"));
  }
  Status st = storage::ValidateRetentionPolicy(o.policy);
  if (!st.ok()) {
    ReportError(st);
    return kExitUsage;
  }
  if (!o.vm.empty() && !(st = storage::ValidateName("VM", o.vm)).ok()) return ReportError(st);
  auto ds = storage::Datastore::Open(o.datastore, !o.dry_run);
  if (!ds.ok()) return ReportError(ds.status());
  auto all = (*ds)->ListSnapshots(o.vm);
  if (!all.ok()) return ReportError(all.status());
  if (all->empty() && !o.vm.empty()) {
    return ReportError(
        Status::NotFound("VM '" + o.vm + "' has no snapshots in datastore " + o.datastore));
  }
  std::map<std::string, std::vector<storage::SnapshotRecord>> per_vm;
  for (auto& s : *all) per_vm[s.vm].push_back(std::move(s));
  std::map<std::string, std::vector<storage::RetentionDecision>> by_vm;
  std::vector<storage::SnapshotRecord> remove;
  for (auto& [vm, list] : per_vm) {
    by_vm[vm] = storage::ApplyRetention(std::move(list), o.policy);
    for (const auto& d : by_vm[vm]) {
      if (!d.keep) remove.push_back(d.snapshot);
    }
  }
  if (!o.dry_run) {
    auto in_use = (*ds)->DeleteSnapshots(remove);
    if (!in_use.ok()) return ReportError(in_use.status().WithContext("nothing was removed"));
    for (auto& [vm, decisions] : by_vm) storage::KeepSnapshotsInUse(*in_use, &decisions);
  }
  nlohmann::json out = ToJson(by_vm, o.dry_run);
  if (!o.json) PrintDecisions(by_vm, o.dry_run);
  if (o.gc) {
    // A dry run's GC cannot see the snapshots the prune would remove as gone: it counts what
    // is unused now.
    storage::GcOptions options;
    options.dry_run = o.dry_run;
    auto report = RunGc(**ds, options, o.json);
    if (!report.ok()) {
      if (o.json) std::cout << out.dump(2) << "\n";
      return ReportError(report.status().WithContext("gc after prune (the prune is done)"));
    }
    if (o.json)
      out["gc"] = GcJson(*report);
    else
      PrintGcReport(*report);
  }
  if (o.json) std::cout << out.dump(2) << "\n";
  return kExitOk;
}

}  // namespace

void AddPruneCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<PruneOptions>();
  auto* cmd = app.add_subcommand(
      "prune", "Remove the snapshots a retention policy does not keep (chunks stay until GC)");
  cmd->add_option("--datastore", o->datastore, "Datastore directory");
  cmd->add_option("--vm", o->vm, "Only this VM (default: every VM, each on its own)");
  cmd->add_option("--keep-last", o->policy.keep_last, "Keep the N newest snapshots");
  cmd->add_option("--keep-hourly", o->policy.keep_hourly, "Keep the newest of the last N hours");
  cmd->add_option("--keep-daily", o->policy.keep_daily, "Keep the newest of the last N days");
  cmd->add_option("--keep-weekly", o->policy.keep_weekly,
                  "Keep the newest of the last N ISO weeks");
  cmd->add_option("--keep-monthly", o->policy.keep_monthly, "Keep the newest of the last N months");
  cmd->add_option("--keep-yearly", o->policy.keep_yearly, "Keep the newest of the last N years");
  cmd->add_flag("--dry-run", o->dry_run, "Show what would be kept and removed; remove nothing");
  cmd->add_flag("--gc", o->gc,
                "Then remove the chunks no snapshot uses any more (offhost gc, default --min-age)");
  cmd->add_flag("--json", o->json, "Print as JSON");
  cmd->callback([run, o] { *run = [o] { return RunPrune(*o); }; });
}

}  // namespace offhost::cli
