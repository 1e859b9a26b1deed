// The offhost.v1 services as a vendor sees them: an in-process gRPC server over a real
// datastore holding backups of a small ext4 disk (made at run time with mkfs.ext4 -d), with a
// fake Authorizer that lets everyone in or turns everyone away.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "grpc_test_util.h"
#include "offhost/v1/catalog.grpc.pb.h"
#include "offhost/v1/datastore.grpc.pb.h"
#include "offhost/v1/system.grpc.pb.h"

namespace offhost::grpcapi {
namespace {

using offhost::testing::TempDir;
using testing::BackupImage;
using testing::Ext4Image;
using testing::FakeAuthorizer;
using testing::Have;
using testing::InProcessServer;
using testing::Reason;
using testing::WriteFile;

constexpr uint64_t kDiskSize = 8 << 20;
constexpr const char* kWeb = "datastores/main/vms/web01";

class ServicesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!Have("mkfs.ext4")) return;
    shared_ = new Shared;
    storage::DatastoreConfig config;
    config.chunk_size = 64 * 1024;
    ASSERT_TRUE(storage::Datastore::Init(shared_->dir / "ds", config).ok());
    auto ds = std::move(*storage::Datastore::Open(shared_->dir / "ds", true));
    // web01 twice (nginx.conf grows in between), both with a catalog; db01 without one.
    Backup(*ds, "web01", Image("worker_processes 1;\n"), true);
    Backup(*ds, "web01", Image("worker_processes 4;\nevents {}\n"), true);
    Backup(*ds, "db01", Image("worker_processes 1;\n"), false);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }

  // An ext4 file system filling the disk, with /etc/hosts and /etc/nginx/nginx.conf. hosts is
  // written once, so its times (which mkfs copies) stay the same in every image.
  static std::string Image(const std::string& nginx_conf) {
    std::string root = shared_->dir / "root";
    if (!std::filesystem::exists(root)) {
      std::filesystem::create_directories(root + "/etc/nginx");
      WriteFile(root + "/etc/hosts", "127.0.0.1 localhost\n");
    }
    WriteFile(root + "/etc/nginx/nginx.conf", nginx_conf);
    return Ext4Image(root, shared_->dir / "disk.img", kDiskSize);
  }

  static void Backup(storage::Datastore& ds, const std::string& vm, const std::string& image,
                     bool catalog) {
    BackupImage(ds, vm, image, kDiskSize, catalog);
  }

  void SetUp() override {
    if (!shared_) GTEST_SKIP() << "mkfs.ext4 is missing (Debian: e2fsprogs)";
    context_.authorizer = &auth_;
    context_.datastores = {{"main", shared_->dir / "ds", "the test datastore"}};
    server_ = std::make_unique<InProcessServer>(context_);
    auto channel = server_->channel();
    system_ = v1::SystemService::NewStub(channel);
    catalog_ = v1::CatalogService::NewStub(channel);
    datastores_ = v1::DatastoreService::NewStub(channel);
  }

  v1::ListFilesResponse ListFiles(const std::string& snapshot, const std::string& path,
                                  v1::FileSource source = v1::FILE_SOURCE_UNSPECIFIED) {
    grpc::ClientContext ctx;
    v1::ListFilesRequest req;
    req.set_snapshot(snapshot);
    req.set_path(path);
    req.set_source(source);
    v1::ListFilesResponse resp;
    grpc::Status st = catalog_->ListFiles(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  static std::vector<std::string> Names(const v1::ListFilesResponse& r) {
    std::vector<std::string> names;
    for (const auto& e : r.entries()) names.push_back(e.name());
    return names;
  }

  struct Shared {
    TempDir dir;
  };
  static Shared* shared_;

  FakeAuthorizer auth_;
  ServiceContext context_;
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::SystemService::Stub> system_;
  std::unique_ptr<v1::CatalogService::Stub> catalog_;
  std::unique_ptr<v1::DatastoreService::Stub> datastores_;
};
ServicesTest::Shared* ServicesTest::shared_ = nullptr;

TEST_F(ServicesTest, WhoAmIAndSystemInfo) {
  grpc::ClientContext ctx;
  v1::WhoAmIResponse who;
  ASSERT_TRUE(system_->WhoAmI(&ctx, {}, &who).ok());
  EXPECT_EQ(who.principal().name(), "veeam-prod");
  EXPECT_EQ(who.principal().role(), v1::ROLE_OPERATOR);
  EXPECT_EQ(who.principal().auth_method(), v1::AUTH_METHOD_BEARER_TOKEN);
  EXPECT_EQ(who.principal().peer(), "ipv4:10.20.0.9:53122");
  EXPECT_EQ(auth_.last_needed, Role::kReadOnly);

  grpc::ClientContext ctx2;
  v1::SystemInfo info;
  ASSERT_TRUE(system_->GetSystemInfo(&ctx2, {}, &info).ok());
  EXPECT_EQ(info.version(), context_.version);
  EXPECT_EQ(info.api_version(), "offhost.v1");
  EXPECT_FALSE(info.hostname().empty());
  EXPECT_GT(info.start_time().seconds(), 0);
  EXPECT_EQ(std::vector<std::string>(info.features().begin(), info.features().end()),
            (std::vector<std::string>{"catalog", "export"}));
}

TEST_F(ServicesTest, ListSnapshotsNewestFirstWithDisksAndSizes) {
  grpc::ClientContext ctx;
  v1::ListSnapshotsRequest req;
  req.set_parent(kWeb);
  v1::ListSnapshotsResponse resp;
  ASSERT_TRUE(catalog_->ListSnapshots(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.snapshots_size(), 2);
  const auto& newest = resp.snapshots(0);
  EXPECT_GT(newest.snapshot_id(), resp.snapshots(1).snapshot_id());
  EXPECT_EQ(newest.name(), std::string(kWeb) + "/snapshots/" + newest.snapshot_id());
  EXPECT_EQ(newest.backup_group(), kWeb);
  EXPECT_EQ(newest.driver(), v1::DRIVER_NBD);
  EXPECT_EQ(newest.kind(), v1::Snapshot::KIND_FULL);
  EXPECT_TRUE(newest.cataloged());
  ASSERT_EQ(newest.disks_size(), 1);
  EXPECT_EQ(newest.disks(0).name(), "vda");
  EXPECT_EQ(newest.disks(0).size_bytes(), kDiskSize);
  EXPECT_EQ(newest.logical_bytes(), kDiskSize);
  EXPECT_GT(newest.disks(0).chunk_count(), 0u);
  EXPECT_TRUE(resp.next_page_token().empty());

  // Every VM of every datastore, one per page, newest first.
  req.set_parent("datastores/-/vms/-");
  req.set_page_size(1);
  std::vector<v1::Snapshot> all;
  do {
    grpc::ClientContext page_ctx;
    ASSERT_TRUE(catalog_->ListSnapshots(&page_ctx, req, &resp).ok());
    ASSERT_EQ(resp.snapshots_size(), 1);
    all.push_back(resp.snapshots(0));
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  ASSERT_EQ(all.size(), 3u);
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_GE(all[i - 1].start_time().seconds(), all[i].start_time().seconds());
  }
}

TEST_F(ServicesTest, GetSnapshotResolvesLatest) {
  grpc::ClientContext ctx;
  v1::GetSnapshotRequest req;
  req.set_name(std::string(kWeb) + "/snapshots/latest");
  req.set_view(v1::SNAPSHOT_VIEW_FULL);
  v1::Snapshot snap;
  ASSERT_TRUE(catalog_->GetSnapshot(&ctx, req, &snap).ok());
  EXPECT_NE(snap.snapshot_id(), "latest");
  EXPECT_EQ(snap.name(), std::string(kWeb) + "/snapshots/" + snap.snapshot_id());
  ASSERT_EQ(snap.catalog().volumes_size(), 1);
  EXPECT_EQ(snap.catalog().volumes(0).name(), "vda");
  EXPECT_EQ(snap.catalog().volumes(0).volume().fs_type(), "ext4");
}

TEST_F(ServicesTest, UnknownDatastoreOrSnapshotIsNotFoundAndSaysWhy) {
  grpc::ClientContext ctx;
  v1::GetSnapshotRequest req;
  req.set_name("datastores/nope/vms/web01/snapshots/latest");
  v1::Snapshot snap;
  grpc::Status st = catalog_->GetSnapshot(&ctx, req, &snap);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(st.error_message().find("datastores/main"), std::string::npos) << st.error_message();
  EXPECT_EQ(Reason(ctx), "DATASTORE_NOT_FOUND");

  grpc::ClientContext ctx2;
  req.set_name(std::string(kWeb) + "/snapshots/2001-01-01T00:00:00Z");
  st = catalog_->GetSnapshot(&ctx2, req, &snap);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(st.error_message().find("latest is web01@"), std::string::npos) << st.error_message();
  EXPECT_EQ(Reason(ctx2), "SNAPSHOT_NOT_FOUND");

  grpc::ClientContext ctx3;
  req.set_name("web01@latest");
  st = catalog_->GetSnapshot(&ctx3, req, &snap);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("datastores/{ds}/vms/{vm}/snapshots/{id}"), std::string::npos);
}

TEST_F(ServicesTest, ListFilesFromTheCatalog) {
  std::string latest = std::string(kWeb) + "/snapshots/latest";
  auto root = ListFiles(latest, "/");
  EXPECT_EQ(root.source(), v1::FILE_SOURCE_CATALOG);
  EXPECT_NE(root.snapshot(), latest);  // resolved
  ASSERT_EQ(root.entries_size(), 1);
  EXPECT_EQ(root.entries(0).type(), v1::FILE_TYPE_VOLUME);
  EXPECT_EQ(root.entries(0).volume().disk(), "vda");
  EXPECT_GE(root.entries(0).volume().file_count(), 2u);

  auto etc = ListFiles(latest, "/vda/etc");
  EXPECT_EQ(Names(etc), (std::vector<std::string>{"hosts", "nginx"}));
  EXPECT_EQ(etc.entries(0).type(), v1::FILE_TYPE_REGULAR);
  EXPECT_EQ(etc.entries(0).size_bytes(), 20u);
  EXPECT_EQ(etc.entries(1).type(), v1::FILE_TYPE_DIRECTORY);

  grpc::ClientContext ctx;
  v1::GetFileInfoRequest req;
  req.set_snapshot(latest);
  req.set_path("/vda/etc/nginx/missing.conf");
  v1::GetFileInfoResponse resp;
  grpc::Status st = catalog_->GetFileInfo(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Reason(ctx), "PATH_NOT_FOUND");
}

TEST_F(ServicesTest, ListFilesReadsTheBackupWhenThereIsNoCatalog) {
  std::string db = "datastores/main/vms/db01/snapshots/latest";
  auto etc = ListFiles(db, "/vda/etc");
  EXPECT_EQ(etc.source(), v1::FILE_SOURCE_BACKUP);
  EXPECT_EQ(Names(etc), (std::vector<std::string>{"hosts", "nginx"}));

  grpc::ClientContext ctx;
  v1::GetFileInfoRequest req;
  req.set_snapshot(db);
  req.set_path("/vda/etc/nginx/nginx.conf");
  v1::GetFileInfoResponse resp;
  ASSERT_TRUE(catalog_->GetFileInfo(&ctx, req, &resp).ok());
  EXPECT_EQ(resp.file().size_bytes(), 20u);

  grpc::ClientContext ctx2;
  req.set_source(v1::FILE_SOURCE_CATALOG);
  grpc::Status st = catalog_->GetFileInfo(&ctx2, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Reason(ctx2), "NO_CATALOG");
}

TEST_F(ServicesTest, SearchFilesFindsEveryVersionAcrossPages) {
  v1::SearchFilesRequest req;
  req.set_parent("datastores/-");
  req.set_pattern("NGINX.conf");
  req.set_ignore_case(true);
  req.set_page_size(1);
  std::vector<v1::FileHit> hits;
  do {
    grpc::ClientContext ctx;
    v1::SearchFilesResponse resp;
    grpc::Status st = catalog_->SearchFiles(&ctx, req, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.snapshots_without_catalog(), 1u);  // db01
    hits.insert(hits.end(), resp.hits().begin(), resp.hits().end());
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  ASSERT_EQ(hits.size(), 2u);  // two versions of web01's file, newest first
  EXPECT_EQ(hits[0].path(), "/vda/etc/nginx/nginx.conf");
  EXPECT_EQ(hits[0].backup_group(), kWeb);
  EXPECT_EQ(hits[0].file().size_bytes(), 30u);
  EXPECT_EQ(hits[1].file().size_bytes(), 20u);
  EXPECT_GT(hits[0].newest_snapshot(), hits[1].newest_snapshot());

  grpc::ClientContext ctx;
  req.set_page_token("1.0000000000000000");  // not this query's
  v1::SearchFilesResponse resp;
  EXPECT_EQ(catalog_->SearchFiles(&ctx, req, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServicesTest, ListFileVersionsNewestFirst) {
  grpc::ClientContext ctx;
  v1::ListFileVersionsRequest req;
  req.set_backup_group(kWeb);
  req.set_path("/vda/etc/nginx/nginx.conf");
  v1::ListFileVersionsResponse resp;
  ASSERT_TRUE(catalog_->ListFileVersions(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.versions_size(), 2);
  EXPECT_EQ(resp.versions(0).state(), v1::FileVersion::STATE_CHANGED);
  EXPECT_EQ(resp.versions(0).file().size_bytes(), 30u);
  EXPECT_EQ(resp.versions(1).state(), v1::FileVersion::STATE_CHANGED);  // appeared

  grpc::ClientContext ctx2;
  req.set_path("/vda/etc/hosts");
  ASSERT_TRUE(catalog_->ListFileVersions(&ctx2, req, &resp).ok());
  ASSERT_EQ(resp.versions_size(), 2);
  EXPECT_EQ(resp.versions(0).state(), v1::FileVersion::STATE_UNCHANGED);
}

TEST_F(ServicesTest, ListBackupGroups) {
  grpc::ClientContext ctx;
  v1::ListBackupGroupsRequest req;
  req.set_parent("datastores/main");
  v1::ListBackupGroupsResponse resp;
  ASSERT_TRUE(catalog_->ListBackupGroups(&ctx, req, &resp).ok());
  ASSERT_EQ(resp.backup_groups_size(), 2);
  EXPECT_EQ(resp.backup_groups(0).name(), "datastores/main/vms/db01");
  EXPECT_EQ(resp.backup_groups(1).vm_id(), "web01");
  EXPECT_EQ(resp.backup_groups(1).snapshot_count(), 2u);
}

TEST_F(ServicesTest, Datastores) {
  grpc::ClientContext ctx;
  v1::ListDatastoresResponse list;
  ASSERT_TRUE(datastores_->ListDatastores(&ctx, {}, &list).ok());
  ASSERT_EQ(list.datastores_size(), 1);
  EXPECT_EQ(list.datastores(0).name(), "datastores/main");
  EXPECT_EQ(list.datastores(0).chunk_size_bytes(), 64u * 1024);
  EXPECT_EQ(list.datastores(0).description(), "the test datastore");
  EXPECT_FALSE(list.datastores(0).uuid().empty());

  grpc::ClientContext ctx2;
  v1::GetDatastoreStatusRequest req;
  req.set_name("datastores/main");
  v1::DatastoreStatus status;
  ASSERT_TRUE(datastores_->GetDatastoreStatus(&ctx2, req, &status).ok());
  EXPECT_EQ(status.snapshot_count(), 3u);
  EXPECT_EQ(status.vm_count(), 2u);
  EXPECT_EQ(status.logical_bytes(), 3 * kDiskSize);
  EXPECT_GT(status.filesystem_size_bytes(), 0u);

  grpc::ClientContext ctx3;
  v1::Job job;
  grpc::Status st = datastores_->StartVerify(&ctx3, {}, &job);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);  // this context has no job engine
  EXPECT_EQ(auth_.last_needed, Role::kOperator);
}

// Every RPC asks the Authorizer first and returns its refusal unchanged.
TEST_F(ServicesTest, EveryRpcReturnsTheAuthorizersRefusal) {
  auth_.status = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "role too low");
  std::vector<std::pair<std::string, std::function<grpc::Status(grpc::ClientContext*)>>> calls = {
      {"GetSystemInfo",
       [&](auto* c) {
         v1::SystemInfo r;
         return system_->GetSystemInfo(c, {}, &r);
       }},
      {"WhoAmI",
       [&](auto* c) {
         v1::WhoAmIResponse r;
         return system_->WhoAmI(c, {}, &r);
       }},
      {"ListBackupGroups",
       [&](auto* c) {
         v1::ListBackupGroupsResponse r;
         return catalog_->ListBackupGroups(c, {}, &r);
       }},
      {"ListSnapshots",
       [&](auto* c) {
         v1::ListSnapshotsResponse r;
         return catalog_->ListSnapshots(c, {}, &r);
       }},
      {"GetSnapshot",
       [&](auto* c) {
         v1::Snapshot r;
         return catalog_->GetSnapshot(c, {}, &r);
       }},
      {"ListFiles",
       [&](auto* c) {
         v1::ListFilesResponse r;
         return catalog_->ListFiles(c, {}, &r);
       }},
      {"GetFileInfo",
       [&](auto* c) {
         v1::GetFileInfoResponse r;
         return catalog_->GetFileInfo(c, {}, &r);
       }},
      {"SearchFiles",
       [&](auto* c) {
         v1::SearchFilesResponse r;
         return catalog_->SearchFiles(c, {}, &r);
       }},
      {"ListFileVersions",
       [&](auto* c) {
         v1::ListFileVersionsResponse r;
         return catalog_->ListFileVersions(c, {}, &r);
       }},
      {"ListDatastores",
       [&](auto* c) {
         v1::ListDatastoresResponse r;
         return datastores_->ListDatastores(c, {}, &r);
       }},
      {"GetDatastore",
       [&](auto* c) {
         v1::Datastore r;
         return datastores_->GetDatastore(c, {}, &r);
       }},
      {"GetDatastoreStatus",
       [&](auto* c) {
         v1::DatastoreStatus r;
         return datastores_->GetDatastoreStatus(c, {}, &r);
       }},
      {"StartVerify",
       [&](auto* c) {
         v1::Job r;
         return datastores_->StartVerify(c, {}, &r);
       }},
  };
  for (const auto& [name, call] : calls) {
    grpc::ClientContext ctx;
    grpc::Status st = call(&ctx);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << name;
    EXPECT_EQ(st.error_message(), "role too low") << name;
  }
}

}  // namespace
}  // namespace offhost::grpcapi
