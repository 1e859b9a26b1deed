// offhost.v1 CatalogService (catalog.proto): backup groups, snapshots, and the files inside
// them. Everything here reads; datastores are opened read-only per request.
#include <algorithm>
#include <map>
#include <tuple>

#include "catalog_browse.h"
#include "datastores.h"
#include "file_info.h"
#include "names.h"
#include "offhost/proxy/catalog.h"
#include "offhost/v1/catalog.grpc.pb.h"
#include "pagination.h"
#include "services.h"
#include "snapshots.h"
#include "status_map.h"

namespace offhost::grpcapi {
namespace {

// One snapshot a request named, with its datastore and catalog open.
struct OpenSnapshot {
  const DatastoreConfig* config = nullptr;
  std::unique_ptr<storage::Datastore> ds;
  storage::SnapshotRecord record;
  std::unique_ptr<storage::CatalogReader> reader;
  std::optional<storage::CatalogRecord> catalog;  // empty: the snapshot has none

  std::string name() const { return SnapshotResource(config->name, record.vm, record.id); }
};

// A snapshot of a list, and the datastore it is in (ListSnapshots spans datastores).
struct ListedSnapshot {
  size_t datastore;  // index into the request's opened datastores
  storage::SnapshotRecord record;
};

bool NewerFirst(const storage::SnapshotRecord& a, const storage::SnapshotRecord& b) {
  return std::tie(a.started, a.id) > std::tie(b.started, b.id);
}

bool InTimeRange(const storage::SnapshotRecord& s, const v1::ListSnapshotsRequest& r) {
  if (r.has_start_time_from() && s.started < r.start_time_from().seconds()) return false;
  if (r.has_start_time_before() && s.started >= r.start_time_before().seconds()) return false;
  return true;
}

v1::FileVersion::State StateOf(const proxy::PathVersion& v) {
  if (v.no_catalog) return v1::FileVersion::STATE_NO_CATALOG;
  if (!v.entry) return v1::FileVersion::STATE_ABSENT;
  return v.changed ? v1::FileVersion::STATE_CHANGED : v1::FileVersion::STATE_UNCHANGED;
}

// Where ListFiles and GetFileInfo read from: the catalog unless asked otherwise or absent.
grpc::Status ChooseSource(grpc::ServerContext* ctx, const OpenSnapshot& snap, v1::FileSource asked,
                          v1::FileSource* source) {
  if (asked == v1::FILE_SOURCE_CATALOG && !snap.catalog) {
    return Fail(ctx, grpc::StatusCode::FAILED_PRECONDITION, "NO_CATALOG",
                snap.name() +
                    " has no file catalog; ask for FILE_SOURCE_BACKUP to read the "
                    "backup itself");
  }
  bool catalog = asked == v1::FILE_SOURCE_CATALOG ||
                 (asked == v1::FILE_SOURCE_UNSPECIFIED && snap.catalog.has_value());
  *source = catalog ? v1::FILE_SOURCE_CATALOG : v1::FILE_SOURCE_BACKUP;
  return grpc::Status::OK;
}

BrowseTarget TargetOf(OpenSnapshot& snap, v1::FileSource source) {
  bool catalog = source == v1::FILE_SOURCE_CATALOG;
  return {snap.ds.get(), &snap.record, snap.reader.get(), catalog ? &*snap.catalog : nullptr};
}

class CatalogService final : public v1::CatalogService::Service {
 public:
  explicit CatalogService(ServiceContext& context) : context_(context) {}

  grpc::Status ListBackupGroups(grpc::ServerContext* ctx, const v1::ListBackupGroupsRequest* req,
                                v1::ListBackupGroupsResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(Page page, ReadPage(*req), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto ds_name, ParseDatastoreName(req->parent(), "parent"), ctx,
                                 "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto configs, SelectDatastores(context_, ds_name), ctx,
                                 "DATASTORE_NOT_FOUND");
    std::vector<v1::BackupGroup> groups;
    for (const DatastoreConfig* config : configs) {
      OFFHOST_RPC_ASSIGN_OR_RETURN(auto ds, OpenDatastore(*config), ctx, "");
      OFFHOST_RPC_ASSIGN_OR_RETURN(auto snaps, ds->ListSnapshots(), ctx, "");
      std::map<std::string, std::vector<storage::SnapshotRecord>> by_vm;  // ordered by name
      for (auto& s : snaps) by_vm[s.vm].push_back(std::move(s));
      for (const auto& [vm, list] : by_vm)
        FillBackupGroup(config->name, list, &groups.emplace_back());
    }
    for (size_t i = page.begin(groups.size()); i < page.end(groups.size()); ++i) {
      *out->add_backup_groups() = std::move(groups[i]);
    }
    out->set_next_page_token(NextPageToken(*req, page, groups.size()));
    return grpc::Status::OK;
  }

  grpc::Status ListSnapshots(grpc::ServerContext* ctx, const v1::ListSnapshotsRequest* req,
                             v1::ListSnapshotsResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(Page page, ReadPage(*req), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(GroupName parent, ParseGroupName(req->parent(), "parent"), ctx,
                                 "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto configs, SelectDatastores(context_, parent.datastore), ctx,
                                 "DATASTORE_NOT_FOUND");
    std::vector<std::unique_ptr<storage::Datastore>> opened;
    std::vector<std::unique_ptr<storage::CatalogReader>> readers;  // one per opened datastore
    std::vector<ListedSnapshot> all;
    for (const DatastoreConfig* config : configs) {
      OFFHOST_RPC_ASSIGN_OR_RETURN(auto ds, OpenDatastore(*config), ctx, "");
      OFFHOST_RPC_ASSIGN_OR_RETURN(auto snaps,
                                   ds->ListSnapshots(parent.vm == kAny ? "" : parent.vm), ctx, "");
      for (auto& s : snaps) {
        if (InTimeRange(s, *req)) all.push_back({opened.size(), std::move(s)});
      }
      OFFHOST_RPC_ASSIGN_OR_RETURN(readers.emplace_back(), ds->OpenCatalog(), ctx, "");
      opened.push_back(std::move(ds));
    }
    std::stable_sort(all.begin(), all.end(), [](const ListedSnapshot& a, const ListedSnapshot& b) {
      return NewerFirst(a.record, b.record);
    });
    for (size_t i = page.begin(all.size()); i < page.end(all.size()); ++i) {
      const ListedSnapshot& s = all[i];
      Status st = Describe(*configs[s.datastore], *opened[s.datastore], *readers[s.datastore],
                           s.record, req->view(), out->add_snapshots());
      if (!st.ok()) return ToGrpc(ctx, st, "SNAPSHOT_NOT_FOUND");
    }
    out->set_next_page_token(NextPageToken(*req, page, all.size()));
    return grpc::Status::OK;
  }

  grpc::Status GetSnapshot(grpc::ServerContext* ctx, const v1::GetSnapshotRequest* req,
                           v1::Snapshot* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OpenSnapshot snap;
    if (auto st = Open(ctx, req->name(), "name", &snap); !st.ok()) return st;
    Status st = Describe(*snap.config, *snap.ds, *snap.reader, snap.record, req->view(), out);
    return ToGrpc(ctx, st, "SNAPSHOT_NOT_FOUND");
  }

  grpc::Status ListFiles(grpc::ServerContext* ctx, const v1::ListFilesRequest* req,
                         v1::ListFilesResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(Page page, ReadPage(*req), ctx, "");
    OpenSnapshot snap;
    if (auto st = Open(ctx, req->snapshot(), "snapshot", &snap); !st.ok()) return st;
    v1::FileSource source;
    if (auto st = ChooseSource(ctx, snap, req->source(), &source); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto entries, ListEntries(TargetOf(snap, source), GuestPath(*req)),
                                 ctx, "PATH_NOT_FOUND", "VOLUME_NOT_READABLE");
    for (size_t i = page.begin(entries.size()); i < page.end(entries.size()); ++i) {
      *out->add_entries() = std::move(entries[i]);
    }
    out->set_next_page_token(NextPageToken(*req, page, entries.size()));
    out->set_snapshot(snap.name());
    out->set_source(source);
    return grpc::Status::OK;
  }

  grpc::Status GetFileInfo(grpc::ServerContext* ctx, const v1::GetFileInfoRequest* req,
                           v1::GetFileInfoResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OpenSnapshot snap;
    if (auto st = Open(ctx, req->snapshot(), "snapshot", &snap); !st.ok()) return st;
    v1::FileSource source;
    if (auto st = ChooseSource(ctx, snap, req->source(), &source); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(*out->mutable_file(),
                                 StatEntry(TargetOf(snap, source), GuestPath(*req)), ctx,
                                 "PATH_NOT_FOUND", "VOLUME_NOT_READABLE");
    out->set_snapshot(snap.name());
    out->set_source(source);
    return grpc::Status::OK;
  }

  // Each page runs the search again and skips the hits of the pages before it (see
  // pagination.h): FindFiles keeps no state between calls.
  grpc::Status SearchFiles(grpc::ServerContext* ctx, const v1::SearchFilesRequest* req,
                           v1::SearchFilesResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(Page page, ReadPage(*req), ctx, "");
    if (req->pattern().empty()) {
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_ARGUMENT",
                  "pattern is required: a file name glob ('*.conf') or a path glob "
                  "('/vda1/etc/*')",
                  {{"field", "pattern"}});
    }
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto ds_name, ParseDatastoreName(req->parent(), "parent"), ctx,
                                 "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto configs, SelectDatastores(context_, ds_name), ctx,
                                 "DATASTORE_NOT_FOUND");
    std::vector<GroupName> groups;
    for (const auto& g : req->backup_groups()) {
      OFFHOST_RPC_ASSIGN_OR_RETURN(groups.emplace_back(), ParseGroupName(g, "backup_groups"), ctx,
                                   "");
    }
    std::vector<v1::FileHit> hits;
    // One more hit than the page needs tells whether another page follows.
    size_t wanted = page.offset + page.size + 1;
    for (const DatastoreConfig* config : configs) {
      std::vector<std::string> vms = VmsToSearch(config->name, groups);
      if (vms.empty()) continue;
      OFFHOST_RPC_ASSIGN_OR_RETURN(auto ds, OpenDatastore(*config), ctx, "");
      for (const std::string& vm : vms) {
        Status st = Search(*config, *ds, vm, *req, wanted, &hits, out);
        if (!st.ok()) return ToGrpc(ctx, st, "DATASTORE_NOT_FOUND");
      }
    }
    // Each search gave its hits newest version first; keep that across VMs and datastores by
    // comparing the newest snapshots' ids (their start times).
    std::stable_sort(hits.begin(), hits.end(), [](const v1::FileHit& a, const v1::FileHit& b) {
      return a.newest_snapshot().substr(a.newest_snapshot().rfind('/')) >
             b.newest_snapshot().substr(b.newest_snapshot().rfind('/'));
    });
    for (size_t i = page.begin(hits.size()); i < page.end(hits.size()); ++i) {
      *out->add_hits() = std::move(hits[i]);
    }
    out->set_next_page_token(NextPageToken(*req, page, hits.size()));
    return grpc::Status::OK;
  }

  grpc::Status ListFileVersions(grpc::ServerContext* ctx, const v1::ListFileVersionsRequest* req,
                                v1::ListFileVersionsResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(Page page, ReadPage(*req), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(GroupName group,
                                 ParseGroupName(req->backup_group(), "backup_group"), ctx, "");
    if (group.datastore == kAny || group.vm == kAny) {
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_NAME",
                  "backup_group must name one datastore and one VM, without '-'",
                  {{"field", "backup_group"}});
    }
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto config, FindDatastore(context_, group.datastore), ctx,
                                 "DATASTORE_NOT_FOUND");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto ds, OpenDatastore(*config), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(auto versions, proxy::PathHistory(*ds, group.vm, GuestPath(*req)),
                                 ctx, "VM_NOT_FOUND");
    for (size_t i = page.begin(versions.size()); i < page.end(versions.size()); ++i) {
      const proxy::PathVersion& v = versions[i];
      auto* version = out->add_versions();
      version->set_snapshot(SnapshotResource(config->name, group.vm, v.snapshot));
      version->set_state(StateOf(v));
      if (v.entry) FromCatalog(*v.entry, version->mutable_file());
    }
    out->set_next_page_token(NextPageToken(*req, page, versions.size()));
    return grpc::Status::OK;
  }

 private:
  // Resolves a snapshot name ("latest" too) and opens its datastore and catalog.
  grpc::Status Open(grpc::ServerContext* ctx, const std::string& name, const std::string& field,
                    OpenSnapshot* snap) {
    OFFHOST_RPC_ASSIGN_OR_RETURN(SnapshotName n, ParseSnapshotName(name, field), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(snap->config, FindDatastore(context_, n.datastore), ctx,
                                 "DATASTORE_NOT_FOUND");
    OFFHOST_RPC_ASSIGN_OR_RETURN(snap->ds, OpenDatastore(*snap->config), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(snap->record, snap->ds->FindSnapshot(n.vm, n.id), ctx,
                                 "SNAPSHOT_NOT_FOUND");
    OFFHOST_RPC_ASSIGN_OR_RETURN(snap->reader, snap->ds->OpenCatalog(), ctx, "");
    OFFHOST_RPC_ASSIGN_OR_RETURN(snap->catalog,
                                 snap->reader->Record(snap->record.vm, snap->record.id), ctx, "");
    return grpc::Status::OK;
  }

  static Status Describe(const DatastoreConfig& config, storage::Datastore& ds,
                         storage::CatalogReader& reader, const storage::SnapshotRecord& record,
                         v1::SnapshotView view, v1::Snapshot* out) {
    OFFHOST_ASSIGN_OR_RETURN(auto catalog, reader.Record(record.vm, record.id));
    FillSnapshot(config.name, record, catalog.has_value(), out);
    if (view != v1::SNAPSHOT_VIEW_FULL) return Status::OK();
    return FillSnapshotFull(ds, record, catalog, out);
  }

  // The VMs of datastore `ds` that `groups` selects: "" (every VM) when there is no filter.
  static std::vector<std::string> VmsToSearch(const std::string& ds,
                                              const std::vector<GroupName>& groups) {
    if (groups.empty()) return {""};
    std::vector<std::string> vms;
    for (const auto& g : groups) {
      if (g.datastore != kAny && g.datastore != ds) continue;
      if (g.vm == kAny) return {""};
      vms.push_back(g.vm);
    }
    return vms;
  }

  static Status Search(const DatastoreConfig& config, storage::Datastore& ds, const std::string& vm,
                       const v1::SearchFilesRequest& req, size_t limit,
                       std::vector<v1::FileHit>* hits, v1::SearchFilesResponse* out) {
    proxy::FindQuery q;
    q.pattern = req.pattern();
    q.vm = vm;
    q.ignore_case = req.ignore_case();
    q.since = req.start_time_from().seconds();
    q.limit = limit;
    auto found = proxy::FindFiles(ds, q);
    // A VM with no snapshots in this datastore is no error when searching several.
    if (!found.ok() && found.status().code() == StatusCode::kNotFound && !vm.empty()) {
      return Status::OK();
    }
    OFFHOST_RETURN_IF_ERROR(found.status());
    out->set_snapshots_searched(out->snapshots_searched() + found->snapshots_searched);
    out->set_snapshots_without_catalog(out->snapshots_without_catalog() +
                                       found->snapshots_without_catalog);
    for (const proxy::FindHit& h : found->hits) {
      v1::FileHit& hit = hits->emplace_back();
      hit.set_backup_group(GroupResource(config.name, h.vm));
      SetGuestString(
          h.path, [&](const std::string& s) { hit.set_path(s); },
          [&](const std::string& s) { hit.set_raw_path(s); });
      FromCatalog(h.entry, hit.mutable_file());
      hit.set_newest_snapshot(SnapshotResource(config.name, h.vm, h.newest));
      hit.set_oldest_snapshot(SnapshotResource(config.name, h.vm, h.oldest));
      hit.set_snapshot_count(static_cast<uint32_t>(h.snapshots));
    }
    return Status::OK();
  }

  ServiceContext& context_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeCatalogService(ServiceContext& context) {
  return std::make_unique<CatalogService>(context);
}

}  // namespace offhost::grpcapi
