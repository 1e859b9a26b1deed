// offhost verify --datastore DIR [--json]
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "offhost/storage/verify.h"

namespace offhost::cli {
namespace {

struct VerifyCliOptions {
  std::string datastore;
  bool json = false;
};

nlohmann::json ToJson(const storage::VerifyReport& r) {
  nlohmann::json damaged = nlohmann::json::array();
  for (const auto& d : r.damaged) {
    nlohmann::json uses = nlohmann::json::array();
    for (const auto& u : d.uses) {
      uses.push_back({{"vm", u.vm}, {"snapshot", u.snapshot}, {"disk", u.disk},
                      {"offsets", u.offsets}, {"count", u.count}});
    }
    damaged.push_back({{"chunk", d.id.Hex()}, {"path", d.path}, {"reason", d.reason},
                       {"moved_to", d.moved_to}, {"used_by", uses}});
  }
  return {{"ok", r.ok()},
          {"chunks_checked", r.chunks_checked},
          {"bytes_checked", r.bytes_checked},
          {"snapshots_checked", r.snapshots_checked},
          {"damaged", damaged}};
}

int RunVerify(const VerifyCliOptions& o) {
  auto ds = storage::Datastore::Open(o.datastore, false);
  if (!ds.ok()) return ReportError(ds.status());
  std::atomic<uint64_t> done{0}, total{0};
  storage::VerifyOptions options;
  // Damaged chunks are moved aside when this user may write, so backups can repair them.
  options.quarantine = storage::Datastore::Open(o.datastore, true).ok();
  options.progress = [&](uint64_t d, uint64_t t) {
    done = d;
    total = t;
  };
  Result<storage::VerifyReport> report = Status::Cancelled("not run");
  {
    ProgressBar bar("verify", [&] { return std::make_pair(done.load(), total.load()); });
    report = storage::VerifyDatastore(**ds, options);
  }
  if (!report.ok()) return ReportError(report.status());
  const auto& r = *report;
  if (o.json) {
    std::cout << ToJson(r).dump(2) << "\n";
    return r.ok() ? kExitOk : kExitDamage;
  }
  for (const auto& d : r.damaged) {
    std::cout << "DAMAGED chunk " << d.id.Hex() << ": " << d.reason << "\n"
              << "  file: " << d.path << "\n";
    if (!d.moved_to.empty()) {
      std::cout << "  moved aside to " << d.moved_to
                << "; the next backup that reads the same data stores it again\n";
    }
    if (d.uses.empty()) std::cout << "  used by no snapshot\n";
    for (const auto& u : d.uses) {
      std::cout << "  used by " << u.vm << "@" << u.snapshot << " disk " << u.disk
                << " at offset";
      for (auto off : u.offsets) std::cout << " " << off;
      if (u.count > u.offsets.size()) std::cout << " (and " << u.count - u.offsets.size() << " more)";
      std::cout << "\n";
    }
  }
  std::cout << "verify " << o.datastore << ": " << r.chunks_checked << " chunks ("
            << HumanBytes(r.bytes_checked) << ") in " << r.snapshots_checked << " snapshots, "
            << (r.ok() ? "all good" : std::to_string(r.damaged.size()) + " damaged") << "\n";
  return r.ok() ? kExitOk : kExitDamage;
}

}  // namespace

void AddVerifyCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<VerifyCliOptions>();
  auto* cmd = app.add_subcommand("verify", "Re-read every chunk and check it against its hash");
  cmd->add_option("--datastore", o->datastore, "Datastore directory")->required();
  cmd->add_flag("--json", o->json, "Print the report as JSON");
  cmd->callback([run, o] { *run = [o] { return RunVerify(*o); }; });
}

}  // namespace offhost::cli
