// offhost datastore init DIR [--chunk-size SIZE] [--zstd-level N]
#include <iostream>

#include "cli_util.h"
#include "commands.h"
#include "offhost/storage/datastore.h"

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
  if (unit == "K" || unit == "KiB" || unit == "k") mult = 1024;
  else if (unit == "M" || unit == "MiB") mult = 1024 * 1024;
  else if (!unit.empty()) return Status::InvalidArgument("--chunk-size '" + s + "' has unknown unit '" + unit + "'; use K or M");
  if (v * mult > UINT32_MAX) return Status::InvalidArgument("--chunk-size '" + s + "' is too large");
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
}

}  // namespace offhost::cli
