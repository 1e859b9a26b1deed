#include "snapshots.h"

#include <algorithm>

#include "file_info.h"
#include "names.h"

namespace offhost::grpcapi {
namespace {

v1::Snapshot::Kind KindOf(const storage::SnapshotRecord& snap) {
  auto incremental = [](const storage::DiskRecord& d) { return d.incremental; };
  size_t n = std::count_if(snap.disks.begin(), snap.disks.end(), incremental);
  if (n == 0) return v1::Snapshot::KIND_FULL;
  return n == snap.disks.size() ? v1::Snapshot::KIND_INCREMENTAL : v1::Snapshot::KIND_MIXED;
}

void FillDisk(const storage::DiskRecord& d, v1::SnapshotDisk* out) {
  out->set_name(d.name);
  out->set_source(d.source);
  out->set_size_bytes(d.size);
  out->set_incremental(d.incremental);
  out->set_full_reason(d.full_reason);
  out->set_bytes_read(d.bytes_read);
  out->set_new_bytes(d.new_bytes);
  out->set_zero_bytes(d.zero_bytes);
  out->set_unallocated_bytes(d.unallocated_bytes);
  out->set_dirty_bytes(d.dirty_bytes);
  out->set_reused_bytes(d.reused_bytes);
  out->set_chunk_count(d.chunks);
  out->set_new_chunk_count(d.new_chunks);
  out->set_identity(d.identity);
}

}  // namespace

v1::Driver DriverOf(const std::string& driver) {
  if (driver == "nbd") return v1::DRIVER_NBD;
  if (driver == "iscsi") return v1::DRIVER_ISCSI;
  if (driver == "image") return v1::DRIVER_IMAGE;
  if (driver == "libvirt") return v1::DRIVER_LIBVIRT;
  if (driver == "qemu") return v1::DRIVER_QEMU;
  return v1::DRIVER_UNSPECIFIED;
}

void FillSnapshot(const std::string& ds, const storage::SnapshotRecord& snap, bool cataloged,
                  v1::Snapshot* out) {
  out->set_name(SnapshotResource(ds, snap.vm, snap.id));
  out->set_snapshot_id(snap.id);
  out->set_backup_group(GroupResource(ds, snap.vm));
  SetTime(snap.started, out->mutable_start_time());
  SetTime(snap.finished, out->mutable_end_time());
  out->set_vm_uuid(snap.meta.vm_uuid);
  out->set_driver(DriverOf(snap.meta.driver));
  out->set_consistency(snap.meta.consistency == "application" ? v1::CONSISTENCY_APPLICATION
                                                              : v1::CONSISTENCY_CRASH);
  out->set_consistency_reason(snap.meta.consistency_reason);
  out->set_kind(KindOf(snap));
  out->set_checkpoint(snap.meta.checkpoint);
  if (!snap.meta.parent.empty()) out->set_parent(SnapshotResource(ds, snap.vm, snap.meta.parent));
  for (const auto& d : snap.disks) FillDisk(d, out->add_disks());
  out->set_logical_bytes(snap.logical_bytes());
  out->set_bytes_read(snap.bytes_read());
  out->set_new_bytes(snap.new_bytes());
  out->set_cataloged(cataloged);
}

Status FillSnapshotFull(storage::Datastore& datastore, const storage::SnapshotRecord& snap,
                        const std::optional<storage::CatalogRecord>& catalog, v1::Snapshot* out) {
  OFFHOST_ASSIGN_OR_RETURN(std::string config, datastore.GetVmConfig(snap));
  out->set_vm_config(DisplayUtf8(config));  // a protobuf string must be UTF-8
  if (catalog) {
    for (const auto& v : catalog->volumes) {
      FromCatalog(v, catalog->disks, out->mutable_catalog()->add_volumes());
    }
  }
  return Status::OK();
}

void FillBackupGroup(const std::string& ds, const std::vector<storage::SnapshotRecord>& snaps,
                     v1::BackupGroup* out) {
  const auto& newest = snaps.back();
  out->set_name(GroupResource(ds, newest.vm));
  out->set_vm_id(newest.vm);
  out->set_vm_uuid(newest.meta.vm_uuid);
  out->set_snapshot_count(static_cast<uint32_t>(snaps.size()));
  out->set_latest_snapshot(SnapshotResource(ds, newest.vm, newest.id));
  out->set_oldest_snapshot(SnapshotResource(ds, newest.vm, snaps.front().id));
  SetTime(newest.started, out->mutable_latest_snapshot_time());
}

}  // namespace offhost::grpcapi
