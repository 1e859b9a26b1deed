// offhost find PATTERN --datastore DIR [--vm NAME] [--since DATE] [-i] [--limit N] [--json]
// offhost history VM:/PATH --datastore DIR [--json]
// Both read the file catalog only: no backup is opened, no chunk is read. Without
// --datastore both ask offhostd (--server): SearchFiles and ListFileVersions.
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "offhost/proxy/catalog.h"
#include "offhost/v1/catalog.grpc.pb.h"

namespace offhost::cli {
namespace {

struct FindCliOptions {
  std::string datastore, pattern, vm, since;
  bool ignore_case = false, json = false;
  size_t limit = 1000;
  DaemonOptions daemon;
};

struct HistoryCliOptions {
  std::string datastore, ref;
  bool json = false;
  DaemonOptions daemon;
};

// "2026-11-20", "2026-11-20 13:00", "2026-11-20T13:00:00Z" (UTC), or "7d" / "12h" ago.
Result<int64_t> ParseSince(const std::string& text) {
  if (!text.empty() && (text.back() == 'd' || text.back() == 'h')) {
    char* end = nullptr;
    long n = std::strtol(text.c_str(), &end, 10);
    if (end == text.c_str() + text.size() - 1 && n >= 0) {
      return static_cast<int64_t>(std::time(nullptr)) - n * (text.back() == 'd' ? 86400 : 3600);
    }
  }
  for (const char* fmt :
       {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"}) {
    std::tm tm{};
    const char* end = ::strptime(text.c_str(), fmt, &tm);
    if (end && *end == '\0') return static_cast<int64_t>(::timegm(&tm));
  }
  return Status::InvalidArgument("--since '" + text +
                                 "' is not a date: use YYYY-MM-DD, 'YYYY-MM-DD HH:MM' (UTC), or "
                                 "an age such as 7d or 12h");
}

std::string TypeChar(storage::CatalogFileType t) {
  switch (t) {
    case storage::CatalogFileType::kDirectory:
      return "d";
    case storage::CatalogFileType::kSymlink:
      return "l";
    case storage::CatalogFileType::kRegular:
      return "-";
    default:
      return "?";
  }
}

nlohmann::json EntryJson(const storage::CatalogEntry& e) {
  nlohmann::json j = {{"name", e.name},   {"type", TypeChar(e.type)},
                      {"size", e.size},   {"mode", e.mode},
                      {"uid", e.uid},     {"gid", e.gid},
                      {"mtime", e.mtime}, {"ctime", e.ctime}};
  if (!e.link_target.empty()) j["link_target"] = e.link_target;
  return j;
}

int PrintFound(const proxy::FindResult& found, bool json) {
  if (json) {
    nlohmann::json hits = nlohmann::json::array();
    for (const auto& h : found.hits) {
      nlohmann::json j = EntryJson(h.entry);
      j["vm"] = h.vm;
      j["path"] = h.path;
      j["newest"] = h.newest;
      j["oldest"] = h.oldest;
      j["snapshots"] = h.snapshots;
      hits.push_back(std::move(j));
    }
    std::cout << nlohmann::json{{"hits", hits},
                                {"truncated", found.truncated},
                                {"snapshots_searched", found.snapshots_searched},
                                {"snapshots_without_catalog", found.snapshots_without_catalog}}
                     .dump(2)
              << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& h : found.hits) {
    std::string in = h.snapshots == 1 ? ""
                                      : " (+" + std::to_string(h.snapshots - 1) + " older, since " +
                                            h.oldest + ")";
    rows.push_back(
        {h.vm + "@" + h.newest + in, TypeChar(h.entry.type),
         h.entry.type == storage::CatalogFileType::kDirectory ? "" : HumanBytes(h.entry.size),
         FormatTime(h.entry.mtime), Printable(h.path)});
  }
  if (!rows.empty()) PrintTable({"SNAPSHOT", "T", "SIZE", "MODIFIED", "PATH"}, rows, {2});
  std::cerr << found.hits.size() << " match" << (found.hits.size() == 1 ? "" : "es") << " in "
            << found.snapshots_searched << " snapshots";
  if (found.snapshots_without_catalog) {
    std::cerr << " (" << found.snapshots_without_catalog << " without a catalog not searched)";
  }
  if (found.truncated) std::cerr << "; more not shown, raise --limit";
  std::cerr << "\n";
  return found.hits.empty() ? kExitFailed : kExitOk;
}

// SearchFiles page by page until --limit hits; the daemon counts snapshots per page alike.
int FindDaemon(const FindCliOptions& o, int64_t since) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  auto stub = v1::CatalogService::NewStub((*client)->channel());
  v1::SearchFilesRequest req;
  req.set_parent("datastores/-");
  req.set_pattern(o.pattern);
  req.set_ignore_case(o.ignore_case);
  if (!o.vm.empty()) req.add_backup_groups("datastores/-/vms/" + o.vm);
  if (since) req.mutable_start_time_from()->set_seconds(since);
  req.set_page_size(1000);
  proxy::FindResult found;
  do {
    v1::SearchFilesResponse resp;
    auto ctx = (*client)->Context();
    grpc::Status st = stub->SearchFiles(ctx.get(), req, &resp);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    found.snapshots_searched = resp.snapshots_searched();
    found.snapshots_without_catalog = resp.snapshots_without_catalog();
    for (const auto& h : resp.hits()) {
      if (o.limit && found.hits.size() == o.limit) {
        found.truncated = true;
        break;
      }
      found.hits.push_back({LastPart(h.backup_group()), h.path(), ToCatalogEntry(h.file()),
                            LastPart(h.newest_snapshot()), LastPart(h.oldest_snapshot()),
                            h.snapshot_count()});
    }
    req.set_page_token(found.truncated ? "" : resp.next_page_token());
  } while (!req.page_token().empty());
  return PrintFound(found, o.json);
}

int RunFind(const FindCliOptions& o) {
  int64_t since = 0;
  if (!o.since.empty()) {
    auto parsed = ParseSince(o.since);
    if (!parsed.ok()) {
      std::cerr << "offhost: error: " << parsed.status().message() << "\n";
      return kExitUsage;
    }
    since = *parsed;
  }
  auto daemon = UseDaemon(o.daemon, o.datastore);
  if (!daemon.ok()) return ReportError(daemon.status());
  if (*daemon) return FindDaemon(o, since);
  proxy::FindQuery q;
  q.pattern = o.pattern;
  q.vm = o.vm;
  q.ignore_case = o.ignore_case;
  q.limit = o.limit;
  q.since = since;
  auto ds = storage::Datastore::Open(o.datastore, false);
  if (!ds.ok()) return ReportError(ds.status());
  auto found = proxy::FindFiles(**ds, q);
  if (!found.ok()) return ReportError(found.status());
  return PrintFound(*found, o.json);
}

int PrintHistory(const std::string& vm, const std::string& path,
                 const std::vector<proxy::PathVersion>& history, bool json) {
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& v : history) {
      nlohmann::json j = {
          {"snapshot", v.snapshot}, {"changed", v.changed}, {"no_catalog", v.no_catalog}};
      if (v.entry) j["entry"] = EntryJson(*v.entry);
      out.push_back(std::move(j));
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  bool any = false;
  for (size_t i = 0; i < history.size(); ++i) {
    const auto& v = history[i];
    bool first = i + 1 == history.size() || !history[i + 1].entry;
    std::string state = v.no_catalog ? "no catalog"
                        : !v.entry   ? "absent"
                        : v.changed  ? (first ? "appeared" : "changed")
                                     : "same";
    any |= v.entry.has_value();
    rows.push_back({vm + "@" + v.snapshot, state, v.entry ? TypeChar(v.entry->type) : "",
                    v.entry ? HumanBytes(v.entry->size) : "",
                    v.entry ? FormatTime(v.entry->mtime) : ""});
  }
  PrintTable({"SNAPSHOT", "STATE", "T", "SIZE", "MODIFIED"}, rows, {3});
  if (!any) {
    std::cerr << "offhost: " << Printable(path) << " is in none of the " << history.size()
              << " snapshots of " << vm << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

proxy::PathVersion FromProto(const v1::FileVersion& v) {
  proxy::PathVersion p;
  p.snapshot = LastPart(v.snapshot());
  p.changed = v.state() == v1::FileVersion::STATE_CHANGED;
  p.no_catalog = v.state() == v1::FileVersion::STATE_NO_CATALOG;
  if (v.has_file() && v.state() != v1::FileVersion::STATE_ABSENT && !p.no_catalog) {
    p.entry = ToCatalogEntry(v.file());
  }
  return p;
}

// ListFileVersions needs one datastore: the one holding the VM's newest snapshot.
int HistoryDaemon(const HistoryCliOptions& o, const std::string& vm, const std::string& path) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  int exit = kExitOk;
  auto latest = FindSnapshotResource(**client, vm, "latest", &exit);
  if (!latest.ok()) return exit;
  auto stub = v1::CatalogService::NewStub((*client)->channel());
  v1::ListFileVersionsRequest req;
  req.set_backup_group(latest->substr(0, latest->rfind("/snapshots/")));
  req.set_path(path);
  req.set_page_size(1000);
  std::vector<proxy::PathVersion> history;
  do {
    v1::ListFileVersionsResponse resp;
    auto ctx = (*client)->Context();
    grpc::Status st = stub->ListFileVersions(ctx.get(), req, &resp);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    for (const auto& v : resp.versions()) history.push_back(FromProto(v));
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return PrintHistory(vm, path, history, o.json);
}

int RunHistory(const HistoryCliOptions& o) {
  size_t colon = o.ref.find(':');
  if (colon == std::string::npos || colon == 0) {
    std::cerr << "offhost: error: expected VM:/PATH, e.g. web01:/vda1/etc/fstab\n";
    return kExitUsage;
  }
  std::string vm = o.ref.substr(0, colon), path = o.ref.substr(colon + 1);
  auto daemon = UseDaemon(o.daemon, o.datastore);
  if (!daemon.ok()) return ReportError(daemon.status());
  if (*daemon) return HistoryDaemon(o, vm, path);
  auto ds = storage::Datastore::Open(o.datastore, false);
  if (!ds.ok()) return ReportError(ds.status());
  auto history = proxy::PathHistory(**ds, vm, path);
  if (!history.ok()) return ReportError(history.status());
  return PrintHistory(vm, path, *history, o.json);
}

}  // namespace

void AddFindCommands(CLI::App& app, RunFn* run) {
  auto f = std::make_shared<FindCliOptions>();
  auto* find =
      app.add_subcommand("find", "Find files by name or glob in the catalog of every backup");
  find->add_option("pattern", f->pattern,
                   "Glob on the file name ('*.conf', 'id_rsa'), or on the whole path when it "
                   "holds a '/' ('/vda1/etc/*')")
      ->required();
  find->add_option("--datastore", f->datastore, "Datastore directory (local mode)");
  AddDaemonOptions(find, &f->daemon);
  find->add_option("--vm", f->vm, "Only this VM's backups");
  find->add_option("--since", f->since,
                   "Only backups taken since DATE (YYYY-MM-DD, UTC) or an age (7d, 12h)");
  find->add_flag("-i,--ignore-case", f->ignore_case, "Match without regard to case");
  find->add_option("--limit", f->limit, "Show at most N file versions (default 1000; 0 = all)");
  find->add_flag("--json", f->json, "Print the matches as JSON");
  find->callback([run, f] { *run = [f] { return RunFind(*f); }; });

  auto h = std::make_shared<HistoryCliOptions>();
  auto* history = app.add_subcommand("history", "One path across every backup of a VM");
  history->add_option("ref", h->ref, "VM:/PATH, e.g. web01:/vda1/etc/fstab")->required();
  history->add_option("--datastore", h->datastore, "Datastore directory (local mode)");
  AddDaemonOptions(history, &h->daemon);
  history->add_flag("--json", h->json, "Print the history as JSON");
  history->callback([run, h] { *run = [h] { return RunHistory(*h); }; });
}

}  // namespace offhost::cli
