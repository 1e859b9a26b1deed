// offhost jobs [--server ADDR] [--json]          the daemon's jobs, newest first
// offhost jobs cancel JOB [--server ADDR]         ask the daemon to cancel one
// offhost jobs show JOB [--server ADDR] [--json]  one job with its timeline
// Jobs exist only in offhostd: there is no local mode.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "job_watch.h"
#include "offhost/v1/jobs.grpc.pb.h"

namespace offhost::cli {
namespace {

struct JobsOptions {
  DaemonOptions daemon;
  bool json = false;
  std::string cancel;  // the job to cancel
  std::string show;    // the job to show with its timeline
};

std::string TypeName(v1::JobType t) {
  switch (t) {
    case v1::JOB_TYPE_BACKUP:
      return "backup";
    case v1::JOB_TYPE_DISK_RESTORE:
      return "restore";
    case v1::JOB_TYPE_FILE_RESTORE:
      return "restore-file";
    case v1::JOB_TYPE_VERIFY:
      return "verify";
    case v1::JOB_TYPE_GC:
      return "gc";
    default:
      return "unknown";
  }
}

// "datastores/{ds}/vms/{vm}/snapshots/{id}" → "vm@id", as the CLI names snapshots.
std::string SnapshotRef(const std::string& name) {
  auto vms = name.find("/vms/"), snaps = name.find("/snapshots/");
  if (vms == std::string::npos || snaps == std::string::npos || snaps < vms) return name;
  return name.substr(vms + 5, snaps - vms - 5) + "@" + name.substr(snaps + 11);
}

// What the job works on, in the CLI's own terms (VM, VM@SNAPSHOT, datastore).
std::string Target(const v1::Job& j) {
  if (j.has_backup()) {
    if (j.has_backup_result()) {
      const auto& s = j.backup_result().snapshot();
      return LastPart(s.backup_group()) + "@" + s.snapshot_id();
    }
    return LastPart(j.backup().vm());
  }
  if (j.has_disk_restore()) {
    const auto& r = j.disk_restore();
    return SnapshotRef(r.snapshot()) + (r.disk().empty() ? "" : " disk " + r.disk());
  }
  if (j.has_file_restore()) {
    return SnapshotRef(j.file_restore().snapshot()) + ":" + j.file_restore().path();
  }
  if (j.has_verify()) return j.verify().datastore().empty() ? "all" : j.verify().datastore();
  return "";
}

std::string Progress(const v1::Job& j) {
  if (j.state() == v1::JOB_STATE_FAILED || j.state() == v1::JOB_STATE_INTERRUPTED) {
    return j.error().message();
  }
  const auto& p = j.progress();
  if (p.total_bytes() == 0) return "";
  return HumanBytes(p.done_bytes()) + " / " + HumanBytes(p.total_bytes());
}

// The state a person reads: a queued or running backup may be waiting for a slot or retry.
std::string StateText(const v1::Job& j) {
  if (j.progress().phase() == v1::JOB_PHASE_WAITING_FOR_SLOT) return "waiting for a host slot";
  if (j.progress().phase() == v1::JOB_PHASE_RETRY_WAIT) return "waiting to retry";
  return JobStateName(j.state());
}

std::string JobName(const std::string& id) { return id.starts_with("jobs/") ? id : "jobs/" + id; }

int ListJobs(const JobsOptions& o) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  auto stub = v1::JobsService::NewStub((*client)->channel());
  v1::ListJobsRequest req;
  req.set_page_size(1000);
  std::vector<v1::Job> jobs;
  do {
    v1::ListJobsResponse resp;
    auto ctx = (*client)->Context();
    grpc::Status st = stub->ListJobs(ctx.get(), req, &resp);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    jobs.insert(jobs.end(), resp.jobs().begin(), resp.jobs().end());
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& job : jobs) j.push_back(ProtoJson(job));
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (jobs.empty()) {
    std::cout << "no jobs in offhostd at " << (*client)->server() << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& j : jobs) {
    rows.push_back({LastPart(j.name()), TypeName(j.type()), StateText(j), Target(j),
                    FormatTime(j.create_time().seconds()), j.creator().name(), Progress(j)});
  }
  PrintTable({"JOB", "TYPE", "STATE", "TARGET", "CREATED", "BY", "PROGRESS"}, rows, {});
  return kExitOk;
}

int CancelJob(const JobsOptions& o) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  auto stub = v1::JobsService::NewStub((*client)->channel());
  v1::CancelJobRequest req;
  req.set_name(JobName(o.cancel));
  v1::Job job;
  auto ctx = (*client)->Context();
  grpc::Status st = stub->CancelJob(ctx.get(), req, &job);
  if (!st.ok()) return ReportRpcError(st, *ctx, **client);
  std::cout << job.name() << ": " << JobStateName(job.state()) << "\n";
  return kExitOk;
}

// One job: what it is, its state, and its timeline (queued, waiting for a slot, attempts,
// warnings, the end and why), one line per entry.
int ShowJob(const JobsOptions& o) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  auto stub = v1::JobsService::NewStub((*client)->channel());
  v1::GetJobRequest req;
  req.set_name(JobName(o.show));
  v1::Job job;
  auto ctx = (*client)->Context();
  grpc::Status st = stub->GetJob(ctx.get(), req, &job);
  if (!st.ok()) return ReportRpcError(st, *ctx, **client);
  if (o.json) {
    std::cout << ProtoJson(job).dump(2) << "\n";
    return kExitOk;
  }
  std::cout << job.name() << ": " << TypeName(job.type()) << " " << Target(job) << ", "
            << StateText(job) << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : job.timeline()) {
    rows.push_back({FormatTime(e.time().seconds()), e.what(), e.detail()});
  }
  PrintTable({"TIME", "WHAT", "DETAIL"}, rows, {});
  return kExitOk;
}

}  // namespace

void AddJobsCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<JobsOptions>();
  auto* cmd = app.add_subcommand("jobs", "List offhostd's jobs (backups, restores, verifies)");
  AddDaemonOptions(cmd, &o->daemon);
  cmd->add_flag("--json", o->json, "Print the jobs as JSON (the offhost.v1 Job messages)");
  // CLI11 runs the parent's callback after the subcommand's: one callback decides for both.
  cmd->callback([run, o] {
    *run = [o] {
      if (!o->show.empty()) return ShowJob(*o);
      return o->cancel.empty() ? ListJobs(*o) : CancelJob(*o);
    };
  });

  auto* cancel = cmd->add_subcommand("cancel", "Ask offhostd to cancel a job");
  cancel->add_option("JOB", o->cancel, "The job: its id or jobs/ID")->required();
  AddDaemonOptions(cancel, &o->daemon);

  auto* show = cmd->add_subcommand(
      "show", "One job with its timeline (queued, waiting for a host slot, attempts, the end)");
  show->add_option("JOB", o->show, "The job: its id or jobs/ID")->required();
  show->add_flag("--json", o->json, "Print the job as JSON");
  AddDaemonOptions(show, &o->daemon);
}

}  // namespace offhost::cli
