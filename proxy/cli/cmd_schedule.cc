// offhost schedule [--json]                    the daemon's schedules and retention policies
// offhost schedule run-now [VM...]             run scheduled backups now (all when none named)
// offhost schedule prune VM [--dry-run] [--json]  prune by the VM's configured retention policy
// Schedules exist only in offhostd (docs/scheduler.md): there is no local mode.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "job_watch.h"
#include "offhost/v1/schedule.grpc.pb.h"

namespace offhost::cli {
namespace {

struct ScheduleOptions {
  DaemonOptions daemon;
  bool json = false;
  bool run_now = false, prune = false, dry_run = false;
  std::vector<std::string> vms;
};

std::string VmName(const std::string& vm) {
  return vm.find('/') == std::string::npos ? "hosts/-/vms/" + vm : vm;
}

std::string Retention(const v1::RetentionPolicy& p) {
  std::string out;
  auto add = [&](const char* name, int n) {
    if (n > 0) out += (out.empty() ? "" : " ") + std::string(name) + "=" + std::to_string(n);
  };
  add("last", p.keep_last());
  add("hourly", p.keep_hourly());
  add("daily", p.keep_daily());
  add("weekly", p.keep_weekly());
  add("monthly", p.keep_monthly());
  add("yearly", p.keep_yearly());
  return out.empty() ? "-" : out;
}

int List(const ScheduleOptions& o, DaemonClient& client) {
  auto stub = v1::ScheduleService::NewStub(client.channel());
  v1::ListSchedulesResponse resp;
  auto ctx = client.Context();
  grpc::Status st = stub->ListSchedules(ctx.get(), {}, &resp);
  if (!st.ok()) return ReportRpcError(st, *ctx, client);
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& s : resp.schedules()) j.push_back(ProtoJson(s));
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : resp.schedules()) {
    bool sched = !s.calendar().empty();
    rows.push_back(
        {LastPart(s.vm()), sched ? s.calendar() : "-",
         sched ? FormatTime(s.next_run().seconds()) : "-",
         s.full_every_days() > 0 ? std::to_string(s.full_every_days()) + "d" : "-",
         s.full_every_days() > 0 ? FormatTime(s.next_full_day().seconds()).substr(0, 10) : "-",
         s.window().empty() ? "-" : s.window(), std::to_string(s.retries()),
         s.has_retention() ? Retention(s.retention()) : "-"});
  }
  PrintTable({"VM", "SCHEDULE (UTC)", "NEXT RUN", "FULL EVERY", "NEXT FULL", "WINDOW", "RETRIES",
              "RETENTION"},
             rows, {});
  return kExitOk;
}

int RunNow(const ScheduleOptions& o, DaemonClient& client) {
  auto stub = v1::ScheduleService::NewStub(client.channel());
  v1::RunScheduleRequest req;
  for (const std::string& vm : o.vms) req.add_vms(VmName(vm));
  v1::RunScheduleResponse resp;
  auto ctx = client.Context();
  grpc::Status st = stub->RunSchedule(ctx.get(), req, &resp);
  if (!st.ok()) return ReportRpcError(st, *ctx, client);
  for (const auto& j : resp.jobs()) {
    std::cout << j.name() << " " << LastPart(j.backup().vm()) << " " << JobStateName(j.state())
              << (j.backup().full() ? " full" : "") << "\n";
  }
  return kExitOk;
}

int Prune(const ScheduleOptions& o, DaemonClient& client) {
  auto stub = v1::ScheduleService::NewStub(client.channel());
  v1::PruneSnapshotsRequest req;
  req.set_vm(VmName(o.vms.front()));
  req.set_dry_run(o.dry_run);
  v1::PruneSnapshotsResponse resp;
  auto ctx = client.Context();
  grpc::Status st = stub->PruneSnapshots(ctx.get(), req, &resp);
  if (!st.ok()) return ReportRpcError(st, *ctx, client);
  if (o.json) {
    std::cout << ProtoJson(resp).dump(2) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : resp.decisions()) {
    std::string why;
    for (const auto& r : d.reasons()) why += (why.empty() ? "" : ", ") + r;
    rows.push_back({LastPart(d.snapshot()),
                    d.keep() ? "keep" : (o.dry_run ? "would remove" : "removed"),
                    d.keep() ? why : "kept by no rule"});
  }
  PrintTable({"SNAPSHOT", "ACTION", "WHY"}, rows, {});
  std::cout << o.vms.front() << ": " << resp.kept_count() << " kept, " << resp.removed_count()
            << (o.dry_run ? " to remove (dry run: nothing removed)" : " removed") << "\n";
  return kExitOk;
}

int Run(const ScheduleOptions& o) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  if (o.run_now) return RunNow(o, **client);
  if (o.prune) return Prune(o, **client);
  return List(o, **client);
}

}  // namespace

void AddScheduleCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<ScheduleOptions>();
  auto* cmd = app.add_subcommand(
      "schedule", "offhostd's backup schedules and retention policies (docs/scheduler.md)");
  AddDaemonOptions(cmd, &o->daemon);
  cmd->add_flag("--json", o->json, "Print as JSON (the offhost.v1 messages)");
  cmd->callback([run, o] { *run = [o] { return Run(*o); }; });

  auto* now = cmd->add_subcommand(
      "run-now", "Run scheduled backups now, as if their schedule fired (all when none named)");
  now->add_option("VM", o->vms, "VM names (or hosts/HOST/vms/VM)");
  AddDaemonOptions(now, &o->daemon);
  now->callback([o] { o->run_now = true; });

  auto* prune = cmd->add_subcommand(
      "prune", "Remove the VM's snapshots its configured retention policy does not keep");
  prune->add_option("VM", o->vms, "The VM (or hosts/HOST/vms/VM)")->required()->expected(1);
  prune->add_flag("--dry-run", o->dry_run, "Show what would be removed; remove nothing");
  prune->add_flag("--json", o->json, "Print as JSON");
  AddDaemonOptions(prune, &o->daemon);
  prune->callback([o] { o->prune = true; });
}

}  // namespace offhost::cli
