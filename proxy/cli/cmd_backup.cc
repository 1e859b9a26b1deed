// offhost backup --datastore DIR --vm NAME --disk NAME=URI [--disk ...] [--json]
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "offhost/proxy/backup.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"

namespace offhost::cli {
namespace {

struct BackupCliOptions {
  std::string datastore;
  std::string vm;
  std::vector<std::string> disks;
  int threads = 0;
  bool json = false;
};

Result<std::vector<proxy::BackupDisk>> OpenDisks(const std::vector<std::string>& specs) {
  std::vector<proxy::BackupDisk> out;
  for (const auto& spec : specs) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("--disk '" + snapshot_drivers::MaskUri(spec) +
                                     "' must be NAME=URI, e.g. --disk vda=nbd+unix:///vda?socket=/run/vda.sock");
    }
    std::string name = spec.substr(0, eq), uri = spec.substr(eq + 1);
    OFFHOST_RETURN_IF_ERROR(storage::ValidateName("disk", name));
    auto dev = snapshot_drivers::OpenNbd(uri);  // sources are always opened read-only
    if (!dev.ok()) return dev.status().WithContext("disk " + name);
    out.push_back({name, std::move(*dev)});
  }
  return out;
}

std::string DedupeText(const storage::SnapshotRecord& s) {
  uint64_t chunks = 0, fresh = 0;
  for (const auto& d : s.disks) {
    chunks += d.chunks;
    fresh += d.new_chunks;
  }
  if (chunks == 0) return "no data chunks";
  if (fresh == 0) return "dedupe all (" + std::to_string(chunks) + " chunks already stored)";
  char buf[64];
  std::snprintf(buf, sizeof buf, "dedupe %.2fx", static_cast<double>(chunks) / static_cast<double>(fresh));
  return buf;
}

int RunBackupCommand(const BackupCliOptions& o) {
  Status name_ok = storage::ValidateName("VM", o.vm);
  if (!name_ok.ok()) return ReportError(name_ok);
  auto ds = storage::Datastore::Open(o.datastore, /*for_writing=*/true);
  if (!ds.ok()) return ReportError(ds.status());
  auto disks = OpenDisks(o.disks);
  if (!disks.ok()) return ReportError(disks.status());

  proxy::BackupCounters counters;
  proxy::BackupOptions options;
  options.threads = o.threads;
  options.counters = &counters;
  Result<proxy::BackupResult> result = Status::Cancelled("not run");
  {
    ProgressBar bar("backup " + o.vm, [&] {
      return std::make_pair(counters.done_bytes.load(), counters.total_bytes.load());
    });
    result = proxy::RunBackup(**ds, o.vm, *disks, options);
  }
  if (!result.ok()) {
    std::cerr << "offhost: backup of " << o.vm << " failed; no snapshot was created and the "
              << "datastore is unchanged apart from unreferenced chunks\n";
    return ReportError(result.status());
  }
  const auto& s = result->snapshot;
  double secs = result->seconds > 0 ? result->seconds : 1e-9;
  if (o.json) {
    nlohmann::json j = {{"vm", s.vm},
                        {"snapshot", s.id},
                        {"logical_bytes", s.logical_bytes()},
                        {"bytes_read", s.bytes_read()},
                        {"new_bytes", s.new_bytes()},
                        {"seconds", result->seconds}};
    for (const auto& d : s.disks) {
      j["disks"].push_back({{"name", d.name}, {"size", d.size}, {"bytes_read", d.bytes_read},
                            {"new_bytes", d.new_bytes}, {"chunks", d.chunks},
                            {"new_chunks", d.new_chunks}, {"zero_bytes", d.zero_bytes},
                            {"unallocated_bytes", d.unallocated_bytes}});
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "backup " << s.vm << "@" << s.id << ": " << HumanBytes(s.logical_bytes())
            << " logical, " << HumanBytes(s.bytes_read()) << " read, "
            << HumanBytes(s.new_bytes()) << " new in datastore, " << DedupeText(s) << ", "
            << HumanRate(static_cast<double>(s.logical_bytes()) / secs) << " in "
            << HumanDuration(result->seconds) << "\n";
  return kExitOk;
}

}  // namespace

void AddBackupCommand(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<BackupCliOptions>();
  auto* cmd = app.add_subcommand("backup", "Back up the disks of a VM snapshot into a datastore");
  cmd->add_option("--datastore", o->datastore, "Datastore directory")->required();
  cmd->add_option("--vm", o->vm, "VM name")->required();
  cmd->add_option("--disk", o->disks, "NAME=URI of a read-only export (nbd://, nbds://, nbd+unix://); repeat per disk")
      ->required();
  cmd->add_option("--threads", o->threads, "Hashing/compression threads (default: one per core)");
  cmd->add_flag("--json", o->json, "Print the result as JSON");
  cmd->callback([run, o] { *run = [o] { return RunBackupCommand(*o); }; });
}

}  // namespace offhost::cli
