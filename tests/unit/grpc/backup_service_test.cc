// BackupService.StartBackup as a vendor sees it, for what is decided before a job exists: an
// ad-hoc source may only name a network export — never a local socket, a local file through
// a TLS parameter, or a password (the daemon runs as root and keeps job specs readable).
#include "grpc_test_util.h"
#include "offhost/proxy/job_engine.h"
#include "offhost/v1/backup.grpc.pb.h"

namespace offhost::grpcapi {
namespace {

using offhost::testing::TempDir;
using testing::FakeAuthorizer;
using testing::InProcessServer;
using testing::Reason;

class BackupServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::DatastoreConfig config;
    ASSERT_TRUE(storage::Datastore::Init(dir_ / "ds", config).ok());
    context_.authorizer = &auth_;
    context_.datastores = {{"main", dir_ / "ds", ""}};
    context_.hosts = {{"vendor", "nbd", {}, /*ad_hoc_sources_allowed=*/true, "main"}};
    jobs_ = std::move(*proxy::JobEngine::Open({.state_dir = dir_ / "state"}));
    context_.jobs = jobs_.get();
    server_ = std::make_unique<InProcessServer>(context_);
    backup_ = v1::BackupService::NewStub(server_->channel());
  }

  // StartBackup of an ad-hoc source with one disk at `uri`; the ErrorInfo reason, "OK" on success.
  std::string AdHoc(const std::string& uri) {
    v1::StartBackupRequest req;
    auto* ad_hoc = req.mutable_spec()->mutable_ad_hoc();
    ad_hoc->set_host("hosts/vendor");
    ad_hoc->set_vm_id("web01");
    auto* disk = ad_hoc->mutable_settings()->mutable_nbd()->add_disks();
    disk->set_name("vda");
    disk->set_uri(uri);
    req.set_validate_only(true);
    grpc::ClientContext ctx;
    v1::Job job;
    grpc::Status st = backup_->StartBackup(&ctx, req, &job);
    return st.ok() ? "OK" : Reason(ctx);
  }

  TempDir dir_;
  FakeAuthorizer auth_;
  ServiceContext context_;
  std::unique_ptr<proxy::JobEngine> jobs_;
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::BackupService::Stub> backup_;
};

TEST_F(BackupServiceTest, AdHocSourcesAreNetworkExportsOnly) {
  EXPECT_EQ(AdHoc("nbd://10.20.0.5:10809/web01-vda"), "OK");
  for (const char* uri : {"nbd+unix:///vda?socket=/srv/ds/tmp/views/other.sock",
                          "nbd://10.20.0.5/vda?tls-psk-file=/etc/shadow",
                          "nbds://user:s3cret@10.20.0.5/vda", "file:///etc/shadow"}) {
    EXPECT_EQ(AdHoc(uri), "SOURCE_NOT_ALLOWED") << uri;
  }
}

}  // namespace
}  // namespace offhost::grpcapi
