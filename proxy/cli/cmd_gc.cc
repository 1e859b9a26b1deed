// offhost gc --datastore DIR [--dry-run] [--min-age 5m] [--json]
// offhost gc [--server ADDR] [--datastore-name NAME] [--dry-run] [--min-age 5m] [--json]
//   against offhostd: one StartGc job per datastore of the daemon (or the named one)
// Removes the chunks no snapshot uses (docs/gc.md), safely while backups run.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "gc_report.h"
#include "job_watch.h"
#include "offhost/storage/datastore.h"
#include "offhost/v1/datastore.grpc.pb.h"

namespace offhost::cli {

Result<int64_t> ParseAge(const std::string& text) {
  size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(text, &used);
  } catch (...) {
  }
  std::string unit = used < text.size() ? text.substr(used) : "s";
  int64_t mult = unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : 0;
  if (v < 0 || mult == 0) {
    return Status::InvalidArgument("--min-age '" + text +
                                   "' is not an age like 300, 300s, 5m, 2h or 1d");
  }
  return static_cast<int64_t>(v) * mult;
}

namespace {

void PauseForTests() {
  const char* path = std::getenv("OFFHOST_TEST_GC_PAUSE");
  if (!path || !*path) return;
  if (std::FILE* f = std::fopen((std::string(path) + ".ready").c_str(), "w")) std::fclose(f);
  for (int i = 0; i < 1200 && !std::filesystem::exists(path); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

Result<storage::GcReport> RunGc(storage::Datastore& ds, storage::GcOptions options, bool quiet) {
  std::atomic<uint64_t> done{0}, total{0};
  std::atomic<bool> sweeping{false};
  options.progress = [&](const char* phase, uint64_t d, uint64_t t) {
    sweeping = std::string(phase) == "sweep";
    done = d;
    total = t;
  };
  std::atomic<uint64_t> deletes{0};
  options.before_delete = [&](const storage::ChunkId&) {
    if (++deletes >= 2) PauseForTests();  // every sweep thread stops after the first delete
  };
  std::unique_ptr<ProgressBar> bar;
  if (!quiet && StdoutIsTerminal()) {
    bar = std::make_unique<ProgressBar>("gc", [&] {
      // Directories of the sweep; the mark phase shows as 0.
      return std::make_pair(sweeping ? done.load() : 0, sweeping ? total.load() : 1);
    });
  }
  return storage::CollectGarbage(ds, options);
}

nlohmann::json GcJson(const storage::GcReport& r) {
  const auto& s = r.sweep;
  const auto& t = r.trees;
  nlohmann::json j = {{"dry_run", r.dry_run},
                      {"started", r.started},
                      {"cutoff", r.cutoff},
                      {"running_backups", r.running_backups},
                      {"snapshots", r.snapshots},
                      {"referenced_chunks", r.referenced_chunks},
                      {"chunks", s.chunks},
                      {"kept_referenced", s.referenced},
                      {"kept_recent", s.recent},
                      {"kept_recent_bytes", s.recent_bytes},
                      {"removed_chunks", s.removed},
                      {"removed_bytes", s.removed_bytes},
                      {"removed_temporary_files", s.temporary_removed},
                      {"removed_temporary_bytes", s.temporary_bytes},
                      {"mark_seconds", r.mark_seconds},
                      {"sweep_seconds", r.sweep_seconds},
                      {"mark_set_bytes", r.mark_set_bytes},
                      {"catalog_trees", t.trees},
                      {"referenced_catalog_trees", t.referenced},
                      {"removed_catalog_trees", t.removed},
                      {"removed_catalog_tree_bytes", t.removed_bytes},
                      {"kept_unused_catalog_trees", t.kept_unused},
                      {"kept_unused_catalog_tree_bytes", t.kept_unused_bytes}};
  if (!t.not_collected.empty()) j["catalog_trees_not_collected"] = t.not_collected;
  return j;
}

namespace {

void PrintTreeSweep(const storage::GcReport& r) {
  const auto& t = r.trees;
  std::cout << "  catalog: " << t.trees << " folder trees";
  if (!t.not_collected.empty()) {
    std::cout << "; none removed: " << t.not_collected << "\n";
    return;
  }
  std::cout << ", " << t.referenced << " in use";
  std::cout << "; " << (r.dry_run ? "would remove " : "removed ") << t.removed << " unused ("
            << HumanBytes(t.removed_bytes) << ")";
  if (t.kept_unused > 0) {
    std::cout << "; kept " << t.kept_unused << " unused (" << HumanBytes(t.kept_unused_bytes)
              << ") while backups run: the next gc removes them";
  }
  std::cout << "\n";
}

}  // namespace

void PrintGcReport(const storage::GcReport& r) {
  const auto& s = r.sweep;
  const std::string verb = r.dry_run ? "would remove" : "removed";
  std::cout << "gc" << (r.dry_run ? " (dry run: nothing removed)" : "") << ": " << s.chunks
            << " chunk files, " << r.snapshots << " snapshots using " << r.referenced_chunks
            << " chunks\n";
  std::cout << "  " << verb << ": " << s.removed << " unused chunks, "
            << HumanBytes(s.removed_bytes);
  if (s.temporary_removed > 0) {
    std::cout << " (and " << s.temporary_removed << " temporary files of stopped backups, "
              << HumanBytes(s.temporary_bytes) << ")";
  }
  std::cout << "\n  kept: " << s.referenced << " in use, " << s.recent
            << " unused but newer than the cut-off " << FormatTime(r.cutoff) << " ("
            << HumanBytes(s.recent_bytes) << ")";
  if (r.running_backups > 0) {
    std::cout << "; " << r.running_backups << " backup(s) running";
  }
  std::cout << "\n";
  PrintTreeSweep(r);
  std::cout << "  time: mark " << HumanDuration(r.mark_seconds) << ", sweep "
            << HumanDuration(r.sweep_seconds) << "\n";
}

namespace {

struct GcCliOptions {
  std::string datastore;
  DaemonOptions daemon;
  std::string datastore_name;
  std::string min_age = "5m";
  bool dry_run = false;
  bool json = false;
};

// The daemon's GcResult in the local report's terms, so both modes print alike.
storage::GcReport FromProto(const v1::GcResult& g, const v1::Job& job) {
  storage::GcReport r;
  r.dry_run = g.dry_run();
  r.started = job.start_time().seconds();
  r.cutoff = g.cutoff_time().seconds();
  r.running_backups = g.running_backup_count();
  r.snapshots = g.snapshot_count();
  r.referenced_chunks = g.referenced_chunk_count();
  r.mark_seconds = g.mark_seconds();
  r.sweep_seconds = g.sweep_seconds();
  r.sweep.chunks = g.chunk_count();
  r.sweep.referenced = g.referenced_chunk_count();
  r.sweep.recent = g.kept_recent_chunk_count();
  r.sweep.recent_bytes = g.kept_recent_bytes();
  r.sweep.removed = g.removed_chunk_count();
  r.sweep.removed_bytes = g.removed_bytes();
  r.sweep.temporary_removed = g.removed_temporary_file_count();
  r.trees.trees = g.catalog_tree_count();
  r.trees.referenced = g.referenced_catalog_tree_count();
  r.trees.removed = g.removed_catalog_tree_count();
  r.trees.removed_bytes = g.removed_catalog_tree_bytes();
  r.trees.kept_unused = g.kept_unused_catalog_tree_count();
  r.trees.kept_unused_bytes = g.kept_unused_catalog_tree_bytes();
  r.trees.not_collected = g.catalog_trees_not_collected();
  return r;
}

// One GC job per datastore, each watched to its end; the worst outcome is the exit code.
int GcDaemon(const GcCliOptions& o, int64_t min_age) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  int exit = kExitOk;
  auto names = DaemonDatastores(**client, o.datastore_name, &exit);
  if (!names.ok()) return exit;
  auto stub = v1::DatastoreService::NewStub((*client)->channel());
  int worst = kExitOk;
  for (const auto& name : *names) {
    v1::StartGcRequest req;
    req.mutable_spec()->set_datastore("datastores/" + name);
    req.mutable_spec()->set_dry_run(o.dry_run);
    req.mutable_spec()->set_min_age_seconds(static_cast<uint32_t>(min_age));
    v1::Job job;
    auto ctx = (*client)->Context();
    grpc::Status st = stub->StartGc(ctx.get(), req, &job);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    auto done = WatchToEnd(**client, job.name(), "gc " + name, &exit);
    if (!done.ok()) return exit;
    if (done->state() != v1::JOB_STATE_SUCCEEDED || !done->has_gc_result()) {
      worst = std::max(worst, ReportJobFailure(*done));
      continue;
    }
    storage::GcReport report = FromProto(done->gc_result(), *done);
    if (o.json) {
      nlohmann::json j = GcJson(report);
      j["datastore"] = name;
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << name << ": ";
      PrintGcReport(report);
    }
  }
  return worst;
}

int RunGcCommand(const GcCliOptions& o) {
  auto age = ParseAge(o.min_age);
  if (!age.ok()) {
    ReportError(age.status());
    return kExitUsage;
  }
  auto daemon = UseDaemon(o.daemon, o.datastore);
  if (!daemon.ok()) return ReportError(daemon.status());
  if (*daemon) return GcDaemon(o, *age);
  auto ds = storage::Datastore::Open(o.datastore, !o.dry_run);
  if (!ds.ok()) return ReportError(ds.status());
  storage::GcOptions options;
  options.dry_run = o.dry_run;
  options.min_age_seconds = *age;
  auto report = RunGc(**ds, options, o.json);
  if (!report.ok()) return ReportError(report.status().WithContext("gc of " + o.datastore));
  if (o.json) {
    std::cout << GcJson(*report).dump(2) << "\n";
  } else {
    PrintGcReport(*report);
  }
  return kExitOk;
}

}  // namespace

void AddGcCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<GcCliOptions>();
  auto* cmd = app.add_subcommand(
      "gc", "Remove the chunks no snapshot uses (safe while backups run; see docs/gc.md)");
  cmd->add_option("--datastore", o->datastore, "Datastore directory (local mode)");
  AddDaemonOptions(cmd, &o->daemon);
  cmd->add_option("--datastore-name", o->datastore_name,
                  "Against offhostd: only this datastore of its configuration (default: all)");
  cmd->add_option("--min-age", o->min_age,
                  "Never remove a chunk written or used less than this long ago (default 5m; "
                  "covers clocks stepped back)");
  cmd->add_flag("--dry-run", o->dry_run, "Count what would be removed; remove nothing");
  cmd->add_flag("--json", o->json, "Print the summary as JSON");
  cmd->callback([run, o] { *run = [o] { return RunGcCommand(*o); }; });
}

}  // namespace offhost::cli
