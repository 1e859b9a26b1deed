// offhost verify --datastore DIR [--json]
// offhost verify [--server ADDR] [--datastore-name NAME] [--json]
//   against offhostd: one StartVerify job per datastore of the daemon (or the named one)
#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "job_watch.h"
#include "offhost/storage/verify.h"
#include "offhost/v1/datastore.grpc.pb.h"

namespace offhost::cli {
namespace {

struct VerifyCliOptions {
  std::string datastore;
  bool json = false;
  std::string datastore_name;  // daemon mode: only this datastore of the daemon
  DaemonOptions daemon;
};

nlohmann::json ToJson(const storage::VerifyReport& r) {
  nlohmann::json damaged = nlohmann::json::array();
  for (const auto& d : r.damaged) {
    nlohmann::json uses = nlohmann::json::array();
    for (const auto& u : d.uses) {
      uses.push_back({{"vm", u.vm},
                      {"snapshot", u.snapshot},
                      {"disk", u.disk},
                      {"offsets", u.offsets},
                      {"count", u.count}});
    }
    damaged.push_back({{"chunk", d.id.Hex()},
                       {"path", d.path},
                       {"reason", d.reason},
                       {"moved_to", d.moved_to},
                       {"used_by", uses}});
  }
  nlohmann::json catalogs = nlohmann::json::array();
  for (const auto& c : r.damaged_catalogs) {
    catalogs.push_back(
        {{"vm", c.vm}, {"snapshot", c.snapshot}, {"tree", c.tree}, {"reason", c.reason}});
  }
  return {{"ok", r.ok()},
          {"chunks_checked", r.chunks_checked},
          {"bytes_checked", r.bytes_checked},
          {"snapshots_checked", r.snapshots_checked},
          {"catalog_trees_checked", r.catalog_trees_checked},
          {"damaged", damaged},
          {"damaged_catalogs", catalogs}};
}

// The same report in both modes; `where` names the datastore.
int PrintReport(const storage::VerifyReport& r, const std::string& where, bool json) {
  if (json) {
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
      std::cout << "  used by " << u.vm << "@" << u.snapshot << " disk " << u.disk << " at offset";
      for (auto off : u.offsets) std::cout << " " << off;
      if (u.count > u.offsets.size())
        std::cout << " (and " << u.count - u.offsets.size() << " more)";
      std::cout << "\n";
    }
  }
  for (const auto& c : r.damaged_catalogs) {
    std::cout << "DAMAGED catalog of " << c.vm << "@" << c.snapshot << ": " << c.reason << "\n"
              << "  its disks still restore; browsing and single-file restore fail there, and "
                 "the VM's next backup catalogs its files again\n";
  }
  std::string verdict = "all good";
  if (!r.ok()) {
    verdict = std::to_string(r.damaged.size()) + " damaged";
    if (!r.damaged_catalogs.empty()) {
      verdict += ", " + std::to_string(r.damaged_catalogs.size()) + " damaged catalog(s)";
    }
  }
  std::cout << "verify " << where << ": " << r.chunks_checked << " chunks ("
            << HumanBytes(r.bytes_checked) << ") in " << r.snapshots_checked << " snapshots, "
            << r.catalog_trees_checked << " catalog folder trees, " << verdict << "\n";
  return r.ok() ? kExitOk : kExitDamage;
}

int VerifyLocal(const VerifyCliOptions& o) {
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
  return PrintReport(*report, o.datastore, o.json);
}

// "datastores/{ds}/vms/{vm}/snapshots/{id}" → vm, id
std::pair<std::string, std::string> VmAndSnapshotOf(const std::string& name) {
  std::string id = name.substr(name.rfind('/') + 1);
  std::string group = name.substr(0, name.rfind("/snapshots/"));
  return {group.substr(group.rfind('/') + 1), id};
}

storage::VerifyReport FromProto(const v1::VerifyResult& v) {
  storage::VerifyReport r;
  r.chunks_checked = v.chunks_checked();
  r.bytes_checked = v.bytes_checked();
  r.snapshots_checked = v.snapshots_checked();
  for (const auto& d : v.damaged_chunks()) {
    storage::DamagedChunk chunk;
    chunk.id = storage::ChunkId::FromHex(d.chunk()).value_or(storage::ChunkId{});
    chunk.path = d.path();
    chunk.reason = d.reason();
    chunk.moved_to = d.moved_to();
    for (const auto& u : d.uses()) {
      auto [vm, id] = VmAndSnapshotOf(u.snapshot());
      chunk.uses.push_back({vm, id, u.disk(), {u.offsets().begin(), u.offsets().end()}, u.count()});
    }
    r.damaged.push_back(std::move(chunk));
  }
  r.catalog_trees_checked = v.catalog_trees_checked();
  for (const auto& c : v.damaged_catalogs()) {
    auto [vm, id] = VmAndSnapshotOf(c.snapshot());
    r.damaged_catalogs.push_back({vm, id, c.tree(), c.reason()});
  }
  return r;
}

// One verify job per datastore, each watched to its end; the worst outcome is the exit code.
int VerifyDaemon(const VerifyCliOptions& o) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  int exit = kExitOk;
  auto names = DaemonDatastores(**client, o.datastore_name, &exit);
  if (!names.ok()) return exit;
  auto stub = v1::DatastoreService::NewStub((*client)->channel());
  int worst = kExitOk;
  for (const auto& name : *names) {
    v1::StartVerifyRequest req;
    req.mutable_spec()->set_datastore("datastores/" + name);
    // As the local mode when it may write: damaged chunks moved aside for the next backup.
    req.mutable_spec()->set_quarantine(true);
    v1::Job job;
    auto ctx = (*client)->Context();
    grpc::Status st = stub->StartVerify(ctx.get(), req, &job);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    auto done = WatchToEnd(**client, job.name(), "verify " + name, &exit);
    if (!done.ok()) return exit;
    int code = done->has_verify_result()
                   ? PrintReport(FromProto(done->verify_result()), name, o.json)
                   : ReportJobFailure(*done);
    if (done->has_verify_result() && done->state() != v1::JOB_STATE_SUCCEEDED && code == kExitOk) {
      code = ReportJobFailure(*done);
    }
    worst = std::max(worst, code);
  }
  return worst;
}

int RunVerify(const VerifyCliOptions& o) {
  auto daemon = UseDaemon(o.daemon, o.datastore);
  if (!daemon.ok()) return ReportError(daemon.status());
  return *daemon ? VerifyDaemon(o) : VerifyLocal(o);
}

}  // namespace

void AddVerifyCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<VerifyCliOptions>();
  auto* cmd = app.add_subcommand("verify", "Re-read every chunk and check it against its hash");
  cmd->add_option("--datastore", o->datastore, "Datastore directory (local mode)");
  AddDaemonOptions(cmd, &o->daemon);
  cmd->add_option("--datastore-name", o->datastore_name,
                  "Against offhostd: only this datastore of its configuration (default: all)");
  cmd->add_flag("--json", o->json, "Print the report as JSON");
  cmd->callback([run, o] { *run = [o] { return RunVerify(*o); }; });
}

}  // namespace offhost::cli
