#include "offhost/proxy/backup.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "disk_backup.h"
#include "offhost/proxy/catalog.h"

namespace offhost::proxy {

// Empty when the disk can be backed up incrementally, else why not.
static std::string FullReason(const BackupDisk& disk, const BackupOptions& options) {
  if (options.force_full) return "full backup requested";
  if (!disk.device->has_dirty_map()) {
    return disk.no_dirty_map_reason.empty() ? "no changed-block information for this disk"
                                            : disk.no_dirty_map_reason;
  }
  if (!options.previous) return "no previous backup of this VM";
  for (const auto& d : options.previous->disks) {
    if (d.name != disk.name) continue;
    if (!d.identity.empty() && !disk.identity.empty() && d.identity != disk.identity) {
      return "disk now holds " + disk.identity + " (the previous backup read " + d.identity + ")";
    }
    if (d.size != disk.device->size()) {
      return "disk was resized from " + std::to_string(d.size) + " to " +
             std::to_string(disk.device->size()) + " bytes";
    }
    return "";
  }
  return "disk is new since the previous backup";
}

// Test hook: with OFFHOST_TEST_HOLD_COMMIT=PATH set, a backup creates PATH.ready once every
// chunk it uses is written or claimed, just before its commit, and waits (up to 2 minutes) for
// PATH to appear. tests/integration/test_gc.sh runs garbage collection in that window.
static void HoldCommitForTests() {
  const char* path = std::getenv("OFFHOST_TEST_HOLD_COMMIT");
  if (!path || !*path) return;
  if (std::FILE* f = std::fopen((std::string(path) + ".ready").c_str(), "w")) std::fclose(f);
  for (int i = 0; i < 1200 && !std::filesystem::exists(path); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// Catalogs the guest files of `disks` into the snapshot being written.
Status CatalogGuestFiles(std::vector<BackupDisk>& disks, storage::SnapshotWriter& writer,
                         CatalogSummary* out) {
  auto t0 = std::chrono::steady_clock::now();
  std::vector<mount::GuestDisk> guest;
  for (auto& disk : disks) guest.push_back({disk.name, disk.device.get()});
  OFFHOST_ASSIGN_OR_RETURN(IndexStats stats, IndexGuestFiles(guest, writer));
  out->files = stats.files;
  out->directories = stats.directories;
  out->skipped_names = stats.skipped_names;
  out->unreadable_dirs = stats.unreadable_dirs;
  out->not_indexed = stats.not_indexed;
  out->new_bytes = writer.new_catalog_bytes();
  out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return Status::OK();
}

Result<BackupResult> RunBackup(storage::Datastore& ds, const std::string& vm,
                               std::vector<BackupDisk>& disks, const BackupOptions& options) {
  if (disks.empty()) return Status::InvalidArgument("a backup needs at least one --disk");
  OFFHOST_ASSIGN_OR_RETURN(auto writer, ds.BeginSnapshot(vm));
  return RunBackup(ds, vm, std::move(writer), disks, options);
}

Result<BackupResult> RunBackup(storage::Datastore& ds, const std::string& vm,
                               std::unique_ptr<storage::SnapshotWriter> writer,
                               std::vector<BackupDisk>& disks, const BackupOptions& options) {
  auto start = std::chrono::steady_clock::now();
  if (disks.empty()) return Status::InvalidArgument("a backup needs at least one --disk");
  if (!writer) return Status::InvalidArgument("internal: backup of " + vm + " without a snapshot");
  if (options.counters) {
    for (const auto& d : disks) options.counters->total_bytes += d.device->size();
  }
  storage::SnapshotMeta meta = options.meta;
  if (options.previous) meta.parent = options.previous->id;
  writer->SetMeta(meta);
  // Once the last disk is read (its last chunks may still be being stored), the catalog reads
  // the guest file systems and the sources are let go: a VM's export then ends while the
  // backup finishes storing, not after.
  BackupResult result;
  Status catalog_status;
  bool finished_reading = false;
  auto finish_reading = [&] {
    if (finished_reading) return;
    finished_reading = true;
    if (options.catalog) catalog_status = CatalogGuestFiles(disks, *writer, &result.catalog);
    if (options.sources_read) options.sources_read();
  };
  for (size_t i = 0; i < disks.size(); ++i) {
    BackupDisk& disk = disks[i];
    OFFHOST_ASSIGN_OR_RETURN(
        storage::DiskManifestWriter * manifest,
        writer->AddDisk(disk.name, disk.device->description(), disk.device->size()));
    std::string full_reason = FullReason(disk, options);
    std::optional<PreviousDisk> previous;
    if (full_reason.empty()) {
      previous.emplace();
      OFFHOST_ASSIGN_OR_RETURN(previous->manifest, ds.OpenManifest(*options.previous, disk.name));
      OFFHOST_ASSIGN_OR_RETURN(previous->claims, ds.OpenManifest(*options.previous, disk.name));
    }
    std::function<void()> reads_done;
    if (i + 1 == disks.size()) reads_done = finish_reading;
    auto record =
        BackupOneDisk(ds, *disk.device, *manifest, options, std::move(previous), reads_done);
    if (!record.ok()) {
      return record.status().WithContext("backup of " + vm + " disk " + disk.name);
    }
    record->full_reason = full_reason;
    record->identity = disk.identity;
    OFFHOST_RETURN_IF_ERROR(manifest->Finish(*record));
  }
  finish_reading();
  OFFHOST_RETURN_IF_ERROR(catalog_status);
  HoldCommitForTests();
  auto commit_start = std::chrono::steady_clock::now();
  OFFHOST_ASSIGN_OR_RETURN(result.snapshot, writer->Commit());
  result.commit_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_start).count();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace offhost::proxy
