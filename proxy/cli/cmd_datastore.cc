// offhost datastore init DIR [--chunk-size SIZE] [--zstd-level N]
// offhost datastore status [--server ADDR] [--datastore-name NAME] [--wait] [--json]
//   against offhostd: each datastore's space, snapshots and deduplication (DatastoreStatus)
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "offhost/storage/datastore.h"
#include "offhost/v1/datastore.grpc.pb.h"

namespace offhost::cli {
namespace {

struct InitOptions {
  std::string dir;
  std::string chunk_size = "4M";
  int zstd_level = 1;
};

Result<uint32_t> ParseSize(const std::string& s) {
  size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(s, &pos);
  } catch (...) {
    return Status::InvalidArgument("--chunk-size '" + s + "' is not a size like 4M or 1M");
  }
  std::string unit = s.substr(pos);
  unsigned long long mult = 1;
  if (unit == "K" || unit == "KiB" || unit == "k")
    mult = 1024;
  else if (unit == "M" || unit == "MiB")
    mult = 1024 * 1024;
  else if (!unit.empty())
    return Status::InvalidArgument("--chunk-size '" + s + "' has unknown unit '" + unit +
                                   "'; use K or M");
  if (v * mult > UINT32_MAX)
    return Status::InvalidArgument("--chunk-size '" + s + "' is too large");
  return static_cast<uint32_t>(v * mult);
}

int RunInit(const InitOptions& o) {
  auto size = ParseSize(o.chunk_size);
  if (!size.ok()) return ReportError(size.status());
  storage::DatastoreConfig config;
  config.chunk_size = *size;
  config.zstd_level = o.zstd_level;
  Status st = storage::Datastore::Init(o.dir, config);
  if (!st.ok()) return ReportError(st);
  std::cout << "created datastore " << o.dir << " (fixed " << HumanBytes(*size)
            << " chunks, zstd level " << o.zstd_level << ")\n";
  return kExitOk;
}

struct StatusOptions {
  DaemonOptions daemon;
  std::string datastore_name;  // only this one
  bool wait = false;           // until the space accounting has been counted
  bool json = false;
};

std::string Ratio(double r) {
  if (r <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", r);
  return buf;
}

// The daemon counts chunk space in the background: the first status call starts the count.
Result<v1::DatastoreStatus> GetStatus(const DaemonClient& client, const std::string& name,
                                      bool wait, int* exit) {
  auto stub = v1::DatastoreService::NewStub(client.channel());
  auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(30);
  for (;;) {
    v1::GetDatastoreStatusRequest req;
    req.set_name(name);
    v1::DatastoreStatus status;
    auto ctx = client.Context();
    grpc::Status st = stub->GetDatastoreStatus(ctx.get(), req, &status);
    if (!st.ok()) {
      *exit = ReportRpcError(st, *ctx, client);
      return Status::Unavailable("reported");
    }
    if (!wait || status.has_accounting_time() || std::chrono::steady_clock::now() > give_up) {
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int RunStatus(const StatusOptions& o) {
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  std::vector<v1::Datastore> datastores;
  auto stub = v1::DatastoreService::NewStub((*client)->channel());
  v1::ListDatastoresRequest req;
  do {
    v1::ListDatastoresResponse resp;
    auto ctx = (*client)->Context();
    grpc::Status st = stub->ListDatastores(ctx.get(), req, &resp);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    for (const auto& d : resp.datastores()) {
      if (o.datastore_name.empty() || LastPart(d.name()) == o.datastore_name) {
        datastores.push_back(d);
      }
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  if (datastores.empty()) {
    return ReportError(Status::NotFound(
        o.datastore_name.empty() ? "offhostd at " + (*client)->server() + " has no datastore"
                                 : "offhostd has no datastore " + o.datastore_name +
                                       "; list them with 'offhost datastore status'"));
  }
  std::vector<std::pair<v1::Datastore, v1::DatastoreStatus>> all;
  for (const auto& d : datastores) {
    int exit = kExitOk;
    auto status = GetStatus(**client, d.name(), o.wait, &exit);
    if (!status.ok()) return exit;
    all.emplace_back(d, *status);
  }
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& [d, st] : all) {
      j.push_back({{"datastore", ProtoJson(d)}, {"status", ProtoJson(st)}});
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [d, st] : all) {
    bool counted = st.has_accounting_time();
    auto counted_bytes = [&](uint64_t v) { return counted ? HumanBytes(v) : std::string("-"); };
    rows.push_back(
        {LastPart(d.name()), d.path(), std::to_string(st.vm_count()),
         std::to_string(st.snapshot_count()), HumanBytes(st.logical_bytes()),
         counted_bytes(st.unique_bytes()), counted_bytes(st.stored_bytes()),
         counted_bytes(st.unreferenced_bytes()), counted_bytes(st.gc_reclaimable_bytes()),
         Ratio(st.dedupe_ratio()), Ratio(st.total_ratio()), HumanBytes(st.filesystem_free_bytes()),
         counted ? FormatTime(st.accounting_time().seconds()) : "counting (--wait for it)"});
  }
  PrintTable({"DATASTORE", "PATH", "VMS", "SNAPSHOTS", "LOGICAL", "UNIQUE", "STORED",
              "UNREFERENCED", "GC_FREES", "DEDUPE", "TOTAL", "FREE", "COUNTED"},
             rows, {2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  return kExitOk;
}

}  // namespace

void AddDatastoreCommand(CLI::App& app, RunFn* run) {
  auto* ds = app.add_subcommand("datastore", "Manage datastores");
  ds->require_subcommand(1);
  auto opts = std::make_shared<InitOptions>();
  auto* init = ds->add_subcommand("init", "Create a new datastore in an empty or new directory");
  init->add_option("DIR", opts->dir, "Directory for the datastore")->required();
  init->add_option("--chunk-size", opts->chunk_size,
                   "Chunk size, a power of two from 64K to 64M (default 4M; see docs/chunking.md)");
  init->add_option("--zstd-level", opts->zstd_level, "zstd level 1-19 (default 1)");
  init->callback([run, opts] { *run = [opts] { return RunInit(*opts); }; });

  auto so = std::make_shared<StatusOptions>();
  auto* status = ds->add_subcommand(
      "status", "offhostd's datastores: space, snapshots, deduplication (daemon only)");
  AddDaemonOptions(status, &so->daemon);
  status->add_option("--datastore-name", so->datastore_name, "Only this datastore of the daemon");
  status->add_flag("--wait", so->wait,
                   "Wait for the daemon's count of chunk space when it has none yet (the first "
                   "status call starts it)");
  status->add_flag("--json", so->json, "Print the offhost.v1 Datastore and DatastoreStatus");
  status->callback([run, so] { *run = [so] { return RunStatus(*so); }; });
}

}  // namespace offhost::cli
