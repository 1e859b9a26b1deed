// nbdkit-offhost-plugin: one disk of a stored snapshot, served read-only over NBD by nbdkit.
//
//   nbdkit -f --unix S offhost datastore=DIR snapshot=VM@ID disk=NAME [cache=256M]
//   nbdkit -f --unix S --filter=cow offhost ...      # a throwaway write overlay
//   (docs/instant-recovery.md)
//
// Reads go through storage's snapshot disk reader (the one file restore and `offhost mount`
// use): a read fetches, proves (SHA-256) and decompresses only the chunks it touches, and a
// cache shared by every connection keeps the most recent ones decoded. The datastore is opened
// read-only and never written: the plugin cannot write (can_write is false); writes exist only
// in nbdkit's cow filter, in a temporary file of its own.
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "offhost/storage/datastore.h"
#include "offhost/storage/snapshot_disk.h"

// Every connection reads the one shared, thread-safe BlockDevice.
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

namespace {

using offhost::BlockDevice;
using offhost::Extent;
using offhost::ExtentType;
using offhost::ReadRequest;
using offhost::Status;

struct Config {
  std::string datastore;
  std::string vm, snapshot;  // from snapshot=VM@ID
  std::string disk;
  int64_t cache_bytes = 256 << 20;
};

// Set by config, then by get_ready; read-only afterwards, so connections share them freely.
Config config;
std::unique_ptr<offhost::storage::Datastore> datastore;
std::unique_ptr<BlockDevice> disk;
std::string description;

int Fail(const Status& st) {
  nbdkit_error("%s", st.message().c_str());
  return -1;
}

int OffhostConfig(const char* key, const char* value) {
  std::string k = key, v = value;
  if (k == "datastore") {
    config.datastore = v;
  } else if (k == "snapshot") {
    auto at = v.find('@');
    if (at == std::string::npos || at == 0 || at + 1 == v.size()) {
      nbdkit_error("snapshot=%s is not VM@ID (e.g. snapshot=web01@latest)", value);
      return -1;
    }
    config.vm = v.substr(0, at);
    config.snapshot = v.substr(at + 1);
  } else if (k == "disk") {
    config.disk = v;
  } else if (k == "cache") {
    config.cache_bytes = nbdkit_parse_size(value);
    if (config.cache_bytes < 0) return -1;
  } else {
    nbdkit_error(
        "unknown parameter '%s'; the offhost plugin takes datastore=, snapshot=, "
        "disk= and cache=",
        key);
    return -1;
  }
  return 0;
}

int OffhostConfigComplete() {
  if (config.datastore.empty() || config.vm.empty() || config.disk.empty()) {
    nbdkit_error("the offhost plugin needs datastore=DIR snapshot=VM@ID disk=NAME");
    return -1;
  }
  return 0;
}

// Opens the datastore and loads the disk's manifest before nbdkit serves (and before it forks
// into the background), so a wrong snapshot or disk is reported on the terminal.
int OffhostGetReady() {
  auto ds = offhost::storage::Datastore::Open(config.datastore, /*for_writing=*/false);
  if (!ds.ok()) return Fail(ds.status());
  auto snap = (*ds)->FindSnapshot(config.vm, config.snapshot);
  if (!snap.ok()) return Fail(snap.status());
  bool found = false;
  std::string names;
  for (const auto& d : snap->disks) {
    found = found || d.name == config.disk;
    names += (names.empty() ? "" : ", ") + d.name;
  }
  if (!found) {
    return Fail(Status::NotFound(config.vm + "@" + snap->id + " has no disk '" + config.disk +
                                 "'; its disks: " + names));
  }
  offhost::storage::SnapshotDiskOptions options;
  uint64_t chunk = (*ds)->config().chunk_size;
  options.cached_chunks =
      static_cast<size_t>(std::max<uint64_t>(2, static_cast<uint64_t>(config.cache_bytes) / chunk));
  auto opened = offhost::storage::OpenSnapshotDisk(**ds, *snap, config.disk, options);
  if (!opened.ok()) return Fail(opened.status());
  datastore = std::move(*ds);
  disk = std::move(*opened);
  description = "offhost backup " + config.vm + "@" + snap->id + " disk " + config.disk;
  nbdkit_debug("%s: %llu bytes, %zu decoded chunks cached", description.c_str(),
               static_cast<unsigned long long>(disk->size()), options.cached_chunks);
  return 0;
}

void OffhostUnload() {
  disk.reset();
  datastore.reset();
}

void* OffhostOpen(int /*readonly*/) {
  // No per-connection state: the handle only has to be non-NULL.
  return disk.get();
}

int64_t OffhostGetSize(void* /*handle*/) { return static_cast<int64_t>(disk->size()); }

int OffhostCanWrite(void* /*handle*/) { return 0; }
int OffhostCanMultiConn(void* /*handle*/) { return 1; }  // read-only: every connection agrees
int OffhostCanExtents(void* /*handle*/) { return 1; }
int OffhostCanCache(void* /*handle*/) { return NBDKIT_CACHE_EMULATE; }

int OffhostPread(void* /*handle*/, void* buf, uint32_t count, uint64_t offset, uint32_t /*flags*/) {
  ReadRequest r{offset, {static_cast<char*>(buf), count}};
  Status st = disk->Read({&r, 1});
  if (!st.ok()) {
    nbdkit_set_error(EIO);
    return Fail(st);
  }
  return 0;
}

// The manifest's zero entries are allocated zeroes, its unallocated entries holes: clients
// such as qemu-img and nbdcopy skip both without reading them.
int OffhostExtents(void* /*handle*/, uint32_t count, uint64_t offset, uint32_t flags,
                   struct nbdkit_extents* extents) {
  auto list = disk->Extents(offset, count);
  if (!list.ok()) {
    nbdkit_set_error(EIO);
    return Fail(list.status());
  }
  for (const Extent& e : *list) {
    uint32_t type = e.type == ExtentType::kData   ? 0
                    : e.type == ExtentType::kZero ? NBDKIT_EXTENT_ZERO
                                                  : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    if (nbdkit_add_extent(extents, e.offset, e.length, type) == -1) return -1;
    if (flags & NBDKIT_FLAG_REQ_ONE) break;
  }
  return 0;
}

const char* OffhostExportDescription(void* /*handle*/) { return description.c_str(); }

nbdkit_plugin MakePlugin() {
  nbdkit_plugin p = nbdkit_plugin();
  p.name = "offhost";
  p.longname = "offhost backup disk";
  p.version = "0.1.0";
  p.description = "Serves one disk of an offhost backup, read-only, from the datastore";
  p.config = OffhostConfig;
  p.config_complete = OffhostConfigComplete;
  p.config_help =
      "datastore=DIR      (required) the offhost datastore\n"
      "snapshot=VM@ID     (required) the backup; ID may be 'latest'\n"
      "disk=NAME          (required) the disk of that backup, e.g. vda\n"
      "cache=SIZE         decoded chunks kept in memory (default 256M)";
  p.get_ready = OffhostGetReady;
  p.unload = OffhostUnload;
  p.open = OffhostOpen;
  p.get_size = OffhostGetSize;
  p.can_write = OffhostCanWrite;
  p.can_multi_conn = OffhostCanMultiConn;
  p.can_extents = OffhostCanExtents;
  p.can_cache = OffhostCanCache;
  p.pread = OffhostPread;
  p.extents = OffhostExtents;
  p.export_description = OffhostExportDescription;
  return p;
}

nbdkit_plugin plugin = MakePlugin();

}  // namespace

NBDKIT_REGISTER_PLUGIN(plugin)
