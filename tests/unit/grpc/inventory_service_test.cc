// InventoryService as a vendor sees it: the hosts and VMs of the configuration (ordered,
// paged, filtered, secrets never shown), and with VM_VIEW_FULL the disks of real sources —
// disk images read with qemu-img, an NBD export that is not there (an inventory_error, not a
// failed call) — through an in-process server.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "grpc_test_util.h"
#include "offhost/v1/inventory.grpc.pb.h"

namespace offhost::grpcapi {
namespace {

using offhost::testing::TempDir;
using testing::FakeAuthorizer;
using testing::Have;
using testing::InProcessServer;
using testing::Reason;

constexpr const char* kUuid = "6F1D2C9E-1B2A-4C3D-8E9F-0A1B2C3D4E5F";

class InventoryServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::DatastoreConfig config;
    config.chunk_size = 64 * 1024;
    ASSERT_TRUE(storage::Datastore::Init(dir_ / "ds", config).ok());
    raw_ = dir_ / "web05-vda.raw";
    testing::WriteFile(raw_, "");
    std::filesystem::resize_file(raw_, 3 << 20);
    context_.authorizer = &auth_;
    context_.datastores = {{"main", dir_ / "ds", ""}};
    context_.hosts = {
        {"kvm1",
         "libvirt",
         {{"connect", "qemu+tls://admin:pw@kvm1.example/system"}},
         false,
         "main",
         "the production KVM host"},
        {"files", "image", {}, false, "", ""},
        {"exports", "nbd", {}, true, "", ""},
        {"san1",
         "iscsi",
         {{"portal", "iscsi://127.0.0.1:1"},
          {"chap-user", "backup"},
          {"chap-secret", "s3cret-chap"}},
         false,
         "",
         ""},
    };
    context_.vms = {
        {"web01", "kvm1", "", {{"domain", "web01.example"}}},
        {"db01", "kvm1", "", {{"domain", kUuid}, {"freeze-timeout", "30"}}},
        {"web05", "files", "", {{"disk.vda", raw_}}},
        {"gone",
         "exports",
         "",
         {{"disk.vda", "nbd+unix:///vda?socket=" + (dir_ / "no-such.sock")}}},
        {"tls", "exports", "", {{"disk.vda", "nbds://backup:hunter2@10.20.0.5/vda"}}},
        {"lun1", "san1", "", {{"disk.sda", "iscsi://127.0.0.1:1/iqn.2001-05.com.example:t/1"}}},
    };
    server_ = std::make_unique<InProcessServer>(context_);
    inventory_ = v1::InventoryService::NewStub(server_->channel());
  }

  v1::ListVmsResponse ListVms(v1::ListVmsRequest req, grpc::Status* status = nullptr,
                              std::string* reason = nullptr) {
    grpc::ClientContext ctx;
    v1::ListVmsResponse out;
    grpc::Status st = inventory_->ListVms(&ctx, req, &out);
    if (status) *status = st;
    if (reason) *reason = Reason(ctx);
    if (!status) {
      EXPECT_TRUE(st.ok()) << st.error_message();
    }
    return out;
  }

  static std::vector<std::string> Names(const v1::ListVmsResponse& r) {
    std::vector<std::string> out;
    for (const auto& vm : r.vms()) out.push_back(vm.name());
    return out;
  }

  TempDir dir_;
  std::string raw_;
  FakeAuthorizer auth_;
  ServiceContext context_;
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::InventoryService::Stub> inventory_;
};

TEST_F(InventoryServiceTest, ListsHostsByNameWithTheirSettingsAndPages) {
  v1::ListHostsRequest req;
  req.set_page_size(3);
  grpc::ClientContext ctx;
  v1::ListHostsResponse page1;
  ASSERT_TRUE(inventory_->ListHosts(&ctx, req, &page1).ok());
  EXPECT_EQ(auth_.last_needed, Role::kReadOnly);
  ASSERT_EQ(page1.hosts_size(), 3);
  EXPECT_EQ(page1.hosts(0).name(), "hosts/exports");
  EXPECT_EQ(page1.hosts(1).name(), "hosts/files");
  EXPECT_EQ(page1.hosts(2).name(), "hosts/kvm1");
  const v1::Host& kvm = page1.hosts(2);
  EXPECT_EQ(kvm.driver(), v1::DRIVER_LIBVIRT);
  EXPECT_EQ(kvm.address(), "qemu+tls://admin:***@kvm1.example/system");
  EXPECT_EQ(kvm.description(), "the production KVM host");
  EXPECT_EQ(kvm.default_datastore(), "datastores/main");
  EXPECT_EQ(kvm.vm_count(), 2u);
  EXPECT_FALSE(kvm.has_status());  // HOST_VIEW_BASIC contacts nobody
  EXPECT_TRUE(page1.hosts(0).ad_hoc_sources_allowed());
  // Where the first VM's disk is: the socket's folder, the images' folder.
  EXPECT_EQ(page1.hosts(0).address(), dir_.path());
  EXPECT_EQ(page1.hosts(1).address(), dir_.path());
  ASSERT_FALSE(page1.next_page_token().empty());

  req.set_page_token(page1.next_page_token());
  grpc::ClientContext ctx2;
  v1::ListHostsResponse page2;
  ASSERT_TRUE(inventory_->ListHosts(&ctx2, req, &page2).ok());
  ASSERT_EQ(page2.hosts_size(), 1);
  EXPECT_EQ(page2.hosts(0).name(), "hosts/san1");
  EXPECT_EQ(page2.hosts(0).address(), "iscsi://127.0.0.1:1");
  EXPECT_TRUE(page2.next_page_token().empty());

  req.set_view(v1::HOST_VIEW_FULL);  // a token is bound to its query
  grpc::ClientContext ctx3;
  EXPECT_EQ(inventory_->ListHosts(&ctx3, req, &page2).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(InventoryServiceTest, GetHostNamesWhatIsWrong) {
  v1::GetHostRequest req;
  req.set_name("hosts/kvm9");
  grpc::ClientContext ctx;
  v1::Host host;
  grpc::Status st = inventory_->GetHost(&ctx, req, &host);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Reason(ctx), "HOST_NOT_FOUND");
  EXPECT_NE(st.error_message().find("exports, files, kvm1, san1"), std::string::npos)
      << st.error_message();
  req.set_name("kvm1");
  grpc::ClientContext ctx2;
  EXPECT_EQ(inventory_->GetHost(&ctx2, req, &host).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(InventoryServiceTest, ListsVmsByHostThenNameFromTheConfiguration) {
  v1::ListVmsRequest req;
  req.set_parent("hosts/-");
  auto all = ListVms(req);
  EXPECT_EQ(Names(all), (std::vector<std::string>{"hosts/exports/vms/gone", "hosts/exports/vms/tls",
                                                  "hosts/files/vms/web05", "hosts/kvm1/vms/db01",
                                                  "hosts/kvm1/vms/web01", "hosts/san1/vms/lun1"}));
  const v1::Vm& web01 = all.vms(4);
  EXPECT_EQ(web01.vm_id(), "web01");
  EXPECT_EQ(web01.host(), "hosts/kvm1");
  EXPECT_EQ(web01.driver(), v1::DRIVER_LIBVIRT);
  EXPECT_EQ(web01.origin(), v1::Vm::ORIGIN_CONFIGURED);
  EXPECT_EQ(web01.hypervisor_name(), "web01.example");
  EXPECT_EQ(web01.settings().libvirt().domain(), "web01.example");
  EXPECT_EQ(web01.settings().libvirt().connect_uri(), "qemu+tls://admin:***@kvm1.example/system");
  EXPECT_EQ(web01.default_datastore(), "datastores/main");
  EXPECT_EQ(web01.freeze_timeout().seconds(), 10);
  EXPECT_EQ(all.vms(3).freeze_timeout().seconds(), 30);
  EXPECT_EQ(all.vms(3).uuid(), "6f1d2c9e-1b2a-4c3d-8e9f-0a1b2c3d4e5f");
  EXPECT_EQ(all.vms(3).hypervisor_name(), "");  // named by its UUID only
  EXPECT_EQ(all.vms(2).settings().image().disks(0).path(), raw_);
  EXPECT_EQ(all.vms(1).settings().nbd().disks(0).uri(), "nbds://backup:***@10.20.0.5/vda");
  // VM_VIEW_BASIC asks no driver: no disks, no error, no power state.
  EXPECT_EQ(all.vms(0).disks_size(), 0);
  EXPECT_EQ(all.vms(0).inventory_error(), "");
  EXPECT_EQ(all.vms(0).power_state(), v1::Vm::POWER_STATE_UNSPECIFIED);
  // Secrets never leave the daemon: not the URIs' passwords, not the CHAP secret.
  std::string bytes = all.SerializeAsString();
  for (const char* secret : {"hunter2", "s3cret-chap", ":pw@"}) {
    EXPECT_EQ(bytes.find(secret), std::string::npos) << secret;
  }

  req.set_parent("hosts/kvm1");
  EXPECT_EQ(Names(ListVms(req)),
            (std::vector<std::string>{"hosts/kvm1/vms/db01", "hosts/kvm1/vms/web01"}));
  req.set_parent("hosts/nope");
  grpc::Status st;
  std::string reason;
  ListVms(req, &st, &reason);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reason, "HOST_NOT_FOUND");
  req.set_parent("datastores/main");
  ListVms(req, &st, &reason);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(InventoryServiceTest, FiltersByUuidHypervisorNameAndDriver) {
  v1::ListVmsRequest req;
  req.set_parent("hosts/-");
  req.set_uuid("6f1d2c9e-1b2a-4c3d-8e9f-0a1b2c3d4e5f");  // case does not matter
  EXPECT_EQ(Names(ListVms(req)), std::vector<std::string>{"hosts/kvm1/vms/db01"});
  req.clear_uuid();
  req.set_hypervisor_name("web01.example");
  EXPECT_EQ(Names(ListVms(req)), std::vector<std::string>{"hosts/kvm1/vms/web01"});
  req.set_hypervisor_name("web05");  // offhost's own name matches too
  EXPECT_EQ(Names(ListVms(req)), std::vector<std::string>{"hosts/files/vms/web05"});
  req.clear_hypervisor_name();
  req.set_driver(v1::DRIVER_NBD);
  EXPECT_EQ(Names(ListVms(req)),
            (std::vector<std::string>{"hosts/exports/vms/gone", "hosts/exports/vms/tls"}));
}

TEST_F(InventoryServiceTest, LatestSnapshotAndItsUuidComeFromTheDatastore) {
  {
    auto ds = std::move(*storage::Datastore::Open(dir_ / "ds", true));
    auto disk = std::make_shared<offhost::testing::MemoryDisk>(1 << 20);
    disk->Put(0, std::string(4096, 'x'));
    std::vector<proxy::BackupDisk> disks{{"vda", disk, "", ""}};
    proxy::BackupOptions o;
    o.catalog = false;
    o.meta.driver = "libvirt";
    o.meta.vm_uuid = "0a0b0c0d-0000-4000-8000-000000000001";
    auto r = proxy::RunBackup(*ds, "web01", disks, o);
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  v1::GetVmRequest req;
  req.set_name("hosts/-/vms/web01");
  grpc::ClientContext ctx;
  v1::Vm vm;
  ASSERT_TRUE(inventory_->GetVm(&ctx, req, &vm).ok());
  EXPECT_EQ(vm.name(), "hosts/kvm1/vms/web01");
  EXPECT_TRUE(vm.latest_snapshot().starts_with("datastores/main/vms/web01/snapshots/"))
      << vm.latest_snapshot();
  EXPECT_EQ(vm.uuid(), "0a0b0c0d-0000-4000-8000-000000000001");
  v1::ListVmsRequest list;
  list.set_parent("hosts/-");
  list.set_uuid("0A0B0C0D-0000-4000-8000-000000000001");
  EXPECT_EQ(Names(ListVms(list)), std::vector<std::string>{"hosts/kvm1/vms/web01"});
}

TEST_F(InventoryServiceTest, GetVmNamesWhatIsWrong) {
  for (auto [name, code, reason] :
       std::vector<std::tuple<std::string, grpc::StatusCode, std::string>>{
           {"hosts/kvm1/vms/web05", grpc::StatusCode::NOT_FOUND, "VM_NOT_FOUND"},
           {"hosts/kvm9/vms/web01", grpc::StatusCode::NOT_FOUND, "HOST_NOT_FOUND"},
           {"hosts/-/vms/nope", grpc::StatusCode::NOT_FOUND, "VM_NOT_FOUND"},
           {"vms/web01", grpc::StatusCode::INVALID_ARGUMENT, "INVALID_NAME"}}) {
    v1::GetVmRequest req;
    req.set_name(name);
    grpc::ClientContext ctx;
    v1::Vm vm;
    EXPECT_EQ(inventory_->GetVm(&ctx, req, &vm).error_code(), code) << name;
    EXPECT_EQ(Reason(ctx), reason) << name;
  }
}

TEST_F(InventoryServiceTest, FullViewReadsTheDisksAndReportsHostsThatDoNotAnswer) {
  if (!Have("qemu-img")) GTEST_SKIP() << "qemu-img is missing (Debian: qemu-utils)";
  std::string qcow2 = dir_ / "web05-vdb.qcow2";
  ASSERT_EQ(std::system(("qemu-img create -q -f qcow2 " + qcow2 + " 64M").c_str()), 0);
  context_.vms[2].settings["disk.vdb"] = qcow2;
  v1::ListVmsRequest req;
  req.set_parent("hosts/-");
  req.set_driver(v1::DRIVER_IMAGE);
  req.set_view(v1::VM_VIEW_FULL);
  auto images = ListVms(req);
  ASSERT_EQ(images.vms_size(), 1);
  const v1::Vm& web05 = images.vms(0);
  EXPECT_EQ(web05.inventory_error(), "");
  EXPECT_EQ(web05.power_state(), v1::Vm::POWER_STATE_STOPPED);
  EXPECT_TRUE(web05.has_describe_time());
  ASSERT_EQ(web05.disks_size(), 2);
  EXPECT_EQ(web05.disks(0).name(), "vda");
  EXPECT_EQ(web05.disks(0).size_bytes(), 3u << 20);
  EXPECT_EQ(web05.disks(0).format(), "raw");
  EXPECT_EQ(web05.disks(0).source(), raw_);
  EXPECT_FALSE(web05.disks(0).incremental_possible());
  EXPECT_NE(web05.disks(0).full_reason().find("no bitmap"), std::string::npos);
  EXPECT_EQ(web05.disks(1).name(), "vdb");
  EXPECT_EQ(web05.disks(1).size_bytes(), 64u << 20);
  EXPECT_EQ(web05.disks(1).format(), "qcow2");

  // An export nobody serves: the VM carries the error, the call succeeds.
  req.set_driver(v1::DRIVER_NBD);
  req.set_hypervisor_name("gone");
  auto gone = ListVms(req);
  ASSERT_EQ(gone.vms_size(), 1);
  EXPECT_NE(gone.vms(0).inventory_error().find("no-such.sock"), std::string::npos)
      << gone.vms(0).inventory_error();
  EXPECT_EQ(gone.vms(0).disks_size(), 0);

  // GetVm of it with VM_VIEW_FULL: the host is unreachable.
  v1::GetVmRequest get;
  get.set_name("hosts/exports/vms/gone");
  get.set_view(v1::VM_VIEW_FULL);
  grpc::ClientContext ctx;
  v1::Vm vm;
  EXPECT_EQ(inventory_->GetVm(&ctx, get, &vm).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Reason(ctx), "HOST_UNREACHABLE");

  // HOST_VIEW_FULL: the image host answers, the export host does not.
  for (auto [host, state] : std::vector<std::pair<std::string, v1::HostStatus::State>>{
           {"hosts/files", v1::HostStatus::STATE_REACHABLE},
           {"hosts/exports", v1::HostStatus::STATE_UNREACHABLE}}) {
    v1::GetHostRequest hreq;
    hreq.set_name(host);
    hreq.set_view(v1::HOST_VIEW_FULL);
    grpc::ClientContext hctx;
    v1::Host h;
    ASSERT_TRUE(inventory_->GetHost(&hctx, hreq, &h).ok());
    EXPECT_EQ(h.status().state(), state) << host << ": " << h.status().message();
    EXPECT_TRUE(h.status().has_check_time());
  }
}

// A server that takes the connection and never says a word: the call still answers, after
// the describe timeout, with the VM's error.
TEST_F(InventoryServiceTest, AHostThatNeverAnswersCostsOneTimeout) {
  std::string path = dir_ / "silent.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  ASSERT_EQ(::fcntl(fd, F_SETFL, O_NONBLOCK), 0);  // for counting the connections below
  context_.describe_timeout = std::chrono::milliseconds(500);
  context_.vms[3].settings["disk.vda"] = "nbd+unix:///vda?socket=" + path;
  context_.vms[4].settings["disk.vda"] = "nbd+unix:///vda?socket=" + path;
  v1::ListVmsRequest req;
  req.set_parent("hosts/exports");
  req.set_view(v1::VM_VIEW_FULL);
  auto start = std::chrono::steady_clock::now();
  auto out = ListVms(req);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(out.vms_size(), 2);
  for (const auto& vm : out.vms()) {
    EXPECT_EQ(vm.inventory_error(),
              "host exports did not answer within 500 ms (asking about VM " + vm.vm_id() + ")");
  }
  EXPECT_LT(seconds, 5.0);  // both VMs waited for at once
  // Asked again while the first drivers still wait: the same answers are awaited, the host is
  // not asked again (one connection per VM, not one per call).
  out = ListVms(req);
  ASSERT_EQ(out.vms_size(), 2);
  EXPECT_NE(out.vms(0).inventory_error().find("did not answer within 500 ms"), std::string::npos);
  std::vector<int> accepted;
  for (int c; (c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
    accepted.push_back(c);
  }
  EXPECT_EQ(accepted.size(), 2u);
  for (int c : accepted) ::close(c);  // the drivers still waiting get their answer: the end
  ::close(fd);
}

TEST_F(InventoryServiceTest, CredentialsAreListedWithoutSecrets) {
  context_.credentials = {{"san1-chap", "chap", "user backup"}, {"kvm-tls", "libvirt", ""}};
  v1::ListCredentialsRequest req;
  grpc::ClientContext ctx;
  v1::ListCredentialsResponse out;
  ASSERT_TRUE(inventory_->ListCredentials(&ctx, req, &out).ok());
  ASSERT_EQ(out.credentials_size(), 2);
  EXPECT_EQ(out.credentials(0).name(), "credentials/kvm-tls");
  EXPECT_EQ(out.credentials(0).kind(), v1::CREDENTIAL_KIND_LIBVIRT);
  EXPECT_EQ(out.credentials(1).name(), "credentials/san1-chap");
  EXPECT_EQ(out.credentials(1).kind(), v1::CREDENTIAL_KIND_CHAP);
  EXPECT_EQ(out.credentials(1).description(), "user backup");
}

TEST_F(InventoryServiceTest, DiscoveryIsForIscsiHostsAndNeedsAnOperator) {
  v1::DiscoverIscsiTargetsRequest req;
  req.set_host("hosts/files");
  grpc::ClientContext ctx;
  v1::DiscoverIscsiTargetsResponse out;
  EXPECT_EQ(inventory_->DiscoverIscsiTargets(&ctx, req, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(auth_.last_needed, Role::kOperator);
  req.set_host("hosts/nope");
  grpc::ClientContext ctx2;
  EXPECT_EQ(inventory_->DiscoverIscsiTargets(&ctx2, req, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // A portal on a closed port: the host does not answer.
  req.set_host("hosts/san1");
  grpc::ClientContext ctx3;
  grpc::Status st = inventory_->DiscoverIscsiTargets(&ctx3, req, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_EQ(Reason(ctx3), "HOST_UNREACHABLE");
}

}  // namespace
}  // namespace offhost::grpcapi
