// RestoreService.DownloadFiles as a vendor sees it: an in-process gRPC server over a real
// datastore holding a backup of a small ext4 disk (made at run time with mkfs.ext4 -d) with a
// 3 MiB random file, a fake Authorizer and a fake AuditLog that keeps its records.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "grpc_test_util.h"
#include "offhost/proxy/job_engine.h"
#include "offhost/v1/jobs.grpc.pb.h"
#include "offhost/v1/restore.grpc.pb.h"

namespace offhost::grpcapi {
namespace {

using offhost::testing::TempDir;
using testing::BackupImage;
using testing::Ext4Image;
using testing::FakeAuthorizer;
using testing::Have;
using testing::InProcessServer;
using testing::Reason;

constexpr uint64_t kDiskSize = 16 << 20;
constexpr uint64_t kBigSize = (3 << 20) + 12345;  // several DataChunks, the last one short
const std::string kLongName = std::string(120, 'n') + ".txt";
constexpr const char* kLatest = "datastores/main/vms/web01/snapshots/latest";

struct AuditRecord {
  std::string who, action, what, where;
};

class FakeAuditLog : public AuditLog {
 public:
  void Record(const Principal& who, const std::string& action, const std::string& what,
              const std::string& where) override {
    std::lock_guard<std::mutex> lock(mu);
    records.push_back({who.name, action, what, where});
  }
  std::mutex mu;
  std::vector<AuditRecord> records;
};

std::string Sha256(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), size);
}

// What one DownloadFiles stream delivered.
struct Download {
  grpc::Status status;
  std::string reason;  // the ErrorInfo reason of a failed call
  std::optional<v1::DownloadHeader> header;
  std::optional<v1::DownloadTrailer> trailer;
  std::string data;
  std::vector<uint64_t> chunk_offsets;
  size_t largest_chunk = 0;
};

class RestoreServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!Have("mkfs.ext4")) return;
    shared_ = new Shared;
    std::mt19937_64 random(42);
    shared_->big.resize(kBigSize);
    for (char& c : shared_->big) c = static_cast<char>(random());
    std::string root = shared_->dir / "root";
    std::filesystem::create_directories(root + "/data");
    std::ofstream(root + "/data/big.bin", std::ios::binary) << shared_->big;
    std::filesystem::create_symlink("big.bin", root + "/data/link");
    std::filesystem::create_hard_link(root + "/data/big.bin", root + "/data/same.bin");
    // Longer than ustar's 100-byte name field: the tar download needs a pax record for it.
    std::filesystem::create_directories(root + "/data/deep");
    std::ofstream(root + "/data/deep/" + kLongName) << "long\n";
    std::filesystem::permissions(root + "/data/deep/" + kLongName,
                                 std::filesystem::perms::owner_read);
    std::string image = Ext4Image(root, shared_->dir / "disk.img", kDiskSize);

    storage::DatastoreConfig config;
    config.chunk_size = 256 * 1024;
    ASSERT_TRUE(storage::Datastore::Init(shared_->dir / "ds", config).ok());
    auto ds = std::move(*storage::Datastore::Open(shared_->dir / "ds", true));
    BackupImage(*ds, "web01", image, kDiskSize, /*catalog=*/true);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }

  void SetUp() override {
    if (!shared_) GTEST_SKIP() << "mkfs.ext4 is missing (Debian: e2fsprogs)";
    context_.authorizer = &auth_;
    context_.audit = &audit_;
    context_.datastores = {{"main", shared_->dir / "ds", "the test datastore"}};
    jobs_ = std::move(*proxy::JobEngine::Open({.state_dir = tmp_ / "state"}));
    context_.jobs = jobs_.get();
    std::filesystem::create_directories(tmp_ / "restore");
    context_.restore_roots = {tmp_ / "restore"};
    server_ = std::make_unique<InProcessServer>(context_);
    restore_ = v1::RestoreService::NewStub(server_->channel());
  }

  Download Get(const std::string& path, uint64_t offset = 0, uint64_t length = 0,
               v1::DownloadFormat format = v1::DOWNLOAD_FORMAT_UNSPECIFIED) {
    v1::DownloadFilesRequest req;
    req.set_snapshot(kLatest);
    req.set_path(path);
    req.set_offset(offset);
    req.set_length(length);
    req.set_format(format);
    grpc::ClientContext ctx;
    auto reader = restore_->DownloadFiles(&ctx, req);
    Download d;
    v1::DownloadFilesResponse msg;
    while (reader->Read(&msg)) {
      if (msg.has_header()) d.header = msg.header();
      if (msg.has_trailer()) d.trailer = msg.trailer();
      if (msg.has_chunk()) {
        EXPECT_EQ(msg.chunk().offset(), offset + d.data.size());
        d.chunk_offsets.push_back(msg.chunk().offset());
        d.largest_chunk = std::max(d.largest_chunk, msg.chunk().data().size());
        d.data += msg.chunk().data();
      }
    }
    d.status = reader->Finish();
    if (!d.status.ok()) d.reason = Reason(ctx);
    return d;
  }

  grpc::Status StartDisk(const std::string& path, v1::Job* job, std::string* reason = nullptr) {
    v1::StartDiskRestoreRequest req;
    req.mutable_spec()->set_snapshot(kLatest);
    req.mutable_spec()->mutable_file()->set_path(path);
    grpc::ClientContext ctx;
    grpc::Status st = restore_->StartDiskRestore(&ctx, req, job);
    if (reason != nullptr) *reason = Reason(ctx);
    return st;
  }

  grpc::Status StartFiles(const std::string& path, const std::string& dir, v1::Job* job,
                          std::string* reason = nullptr) {
    v1::StartFileRestoreRequest req;
    req.mutable_spec()->set_snapshot(kLatest);
    req.mutable_spec()->set_path(path);
    req.mutable_spec()->set_target_directory(dir);
    grpc::ClientContext ctx;
    grpc::Status st = restore_->StartFileRestore(&ctx, req, job);
    if (reason != nullptr) *reason = Reason(ctx);
    return st;
  }

  // The job once it has ended, as FillJob shows it.
  v1::Job Finished(const v1::Job& started) {
    auto stub = v1::JobsService::NewStub(server_->channel());
    for (int i = 0; i < 600; ++i) {
      v1::GetJobRequest req;
      req.set_name(started.name());
      v1::Job job;
      grpc::ClientContext ctx;
      grpc::Status st = stub->GetJob(&ctx, req, &job);
      if (st.ok() && job.state() >= v1::JOB_STATE_SUCCEEDED) return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << started.name() << " did not end";
    return started;
  }

  struct Shared {
    TempDir dir;
    std::string big;
  };
  static Shared* shared_;

  TempDir tmp_;
  FakeAuthorizer auth_;
  FakeAuditLog audit_;
  std::unique_ptr<proxy::JobEngine> jobs_;
  ServiceContext context_;
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::RestoreService::Stub> restore_;
};
RestoreServiceTest::Shared* RestoreServiceTest::shared_ = nullptr;

TEST_F(RestoreServiceTest, DownloadsAFileWithHeaderChunksAndTrailer) {
  Download d = Get("/vda/data/big.bin");
  ASSERT_TRUE(d.status.ok()) << d.status.error_message();
  EXPECT_EQ(auth_.last_needed, Role::kOperator);
  ASSERT_TRUE(d.header);
  EXPECT_NE(d.header->snapshot().find("datastores/main/vms/web01/snapshots/"), std::string::npos);
  EXPECT_EQ(d.header->snapshot().find("latest"), std::string::npos);
  EXPECT_EQ(d.header->format(), v1::DOWNLOAD_FORMAT_RAW);
  EXPECT_EQ(d.header->file().name(), "big.bin");
  EXPECT_EQ(d.header->file().type(), v1::FILE_TYPE_REGULAR);
  EXPECT_EQ(d.header->content_length_bytes(), kBigSize);
  EXPECT_EQ(d.header->offset(), 0u);
  EXPECT_EQ(d.header->length(), kBigSize);
  EXPECT_TRUE(d.data == shared_->big) << "the bytes differ from the source file";
  EXPECT_EQ(d.chunk_offsets.size(), 4u);
  EXPECT_EQ(d.largest_chunk, size_t{1} << 20);
  ASSERT_TRUE(d.trailer);
  EXPECT_EQ(d.trailer->bytes_sent(), kBigSize);
  EXPECT_EQ(d.trailer->sha256(), Sha256(shared_->big));

  ASSERT_EQ(audit_.records.size(), 1u);
  const AuditRecord& r = audit_.records[0];
  EXPECT_EQ(r.who, "veeam-prod");
  EXPECT_EQ(r.action, "download");
  EXPECT_EQ(r.what.substr(0, 6), "web01@");
  EXPECT_NE(r.what.find(":/vda/data/big.bin"), std::string::npos) << r.what;
  EXPECT_EQ(r.where, "caller, bytes 0-" + std::to_string(kBigSize) + ": OK");
}

TEST_F(RestoreServiceTest, ResumesFromAnOffsetAndHonoursLength) {
  const uint64_t offset = (1 << 20) + 777;
  Download rest = Get("/vda/data/big.bin", offset);
  ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
  EXPECT_EQ(rest.header->offset(), offset);
  EXPECT_EQ(rest.header->length(), kBigSize - offset);
  EXPECT_TRUE(rest.data == shared_->big.substr(offset));
  EXPECT_EQ(rest.trailer->bytes_sent(), kBigSize - offset);
  EXPECT_EQ(rest.trailer->sha256(), Sha256(shared_->big.substr(offset)));

  Download piece = Get("/vda/data/big.bin", 100, 5000);
  ASSERT_TRUE(piece.status.ok()) << piece.status.error_message();
  EXPECT_TRUE(piece.data == shared_->big.substr(100, 5000));
  EXPECT_EQ(piece.trailer->sha256(), Sha256(shared_->big.substr(100, 5000)));

  Download at_end = Get("/vda/data/big.bin", kBigSize);
  ASSERT_TRUE(at_end.status.ok()) << at_end.status.error_message();
  EXPECT_TRUE(at_end.data.empty());
  EXPECT_EQ(at_end.trailer->bytes_sent(), 0u);

  Download beyond = Get("/vda/data/big.bin", kBigSize + 1);
  EXPECT_EQ(beyond.status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(audit_.records.size(), 4u);
}

TEST_F(RestoreServiceTest, MissingPathIsNotFound) {
  Download d = Get("/vda/data/nope");
  EXPECT_EQ(d.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(d.reason, "PATH_NOT_FOUND");
  EXPECT_FALSE(d.header);
  ASSERT_EQ(audit_.records.size(), 1u);
  EXPECT_NE(audit_.records[0].where.find("caller, bytes 0-0: "), std::string::npos);
}

TEST_F(RestoreServiceTest, FoldersHaveNoRawForm) {
  Download raw_folder = Get("/vda/data", 0, 0, v1::DOWNLOAD_FORMAT_RAW);
  EXPECT_EQ(raw_folder.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(raw_folder.reason, "NOT_A_REGULAR_FILE");
}

TEST_F(RestoreServiceTest, FolderDownloadsAsATarThatExtracts) {
  if (!Have("tar")) GTEST_SKIP() << "tar is missing";
  Download d = Get("/vda/data");
  ASSERT_TRUE(d.status.ok()) << d.status.error_message();
  EXPECT_EQ(d.header->format(), v1::DOWNLOAD_FORMAT_TAR);
  EXPECT_EQ(d.header->content_length_bytes(), d.data.size());
  EXPECT_EQ(d.data.size() % 512, 0u);
  EXPECT_EQ(d.trailer->sha256(), Sha256(d.data));
  testing::WriteFile(tmp_ / "data.tar", d.data);
  std::filesystem::create_directories(tmp_ / "x");
  std::string cmd = "tar -x -f " + tmp_ / "data.tar" + " -C " + tmp_ / "x";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_TRUE(testing::ReadFile(tmp_ / "x/data/big.bin") == shared_->big);
  EXPECT_EQ(std::filesystem::read_symlink(tmp_ / "x/data/link"), "big.bin");
  // The guest's hard link: one file, sent once, two names.
  EXPECT_LT(d.data.size(), 2 * kBigSize);
  EXPECT_TRUE(std::filesystem::equivalent(tmp_ / "x/data/big.bin", tmp_ / "x/data/same.bin"));
  std::string lng = tmp_ / ("x/data/deep/" + kLongName);
  EXPECT_EQ(testing::ReadFile(lng), "long\n");
  EXPECT_EQ(std::filesystem::status(lng).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read);
  // A symlink alone is a tar of one entry.
  Download link = Get("/vda/data/link");
  ASSERT_TRUE(link.status.ok()) << link.status.error_message();
  EXPECT_EQ(link.header->format(), v1::DOWNLOAD_FORMAT_TAR);
  EXPECT_EQ(link.data.size(), 512u * 3);
}

TEST_F(RestoreServiceTest, TarIsTheSameBytesEveryTimeSoItResumes) {
  Download whole = Get("/vda/data");
  ASSERT_TRUE(whole.status.ok()) << whole.status.error_message();
  Download again = Get("/vda/data");
  EXPECT_TRUE(again.data == whole.data);
  // From inside big.bin's content, and from inside a header.
  for (uint64_t offset : {uint64_t{1234567}, whole.data.size() - 700}) {
    Download rest = Get("/vda/data", offset);
    ASSERT_TRUE(rest.status.ok()) << rest.status.error_message();
    EXPECT_TRUE(rest.data == whole.data.substr(offset)) << offset;
  }
  Download piece = Get("/vda/data", 100, 1000);
  EXPECT_TRUE(piece.data == whole.data.substr(100, 1000));
}

TEST_F(RestoreServiceTest, UnknownSnapshotIsNotFound) {
  v1::DownloadFilesRequest req;
  req.set_snapshot("datastores/main/vms/nobody/snapshots/latest");
  req.set_path("/vda/data/big.bin");
  grpc::ClientContext ctx;
  auto reader = restore_->DownloadFiles(&ctx, req);
  v1::DownloadFilesResponse msg;
  EXPECT_FALSE(reader->Read(&msg));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(audit_.records.size(), 1u);
  EXPECT_EQ(audit_.records[0].what, req.snapshot() + ":/vda/data/big.bin");
}

TEST_F(RestoreServiceTest, RefusedCallersGetTheAuthorizersStatus) {
  auth_.status = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "role too low");
  Download d = Get("/vda/data/big.bin");
  EXPECT_EQ(d.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_FALSE(d.header);
  EXPECT_TRUE(d.data.empty());
  // The Authorizer logs refusals; the audit log holds what was done.
  EXPECT_TRUE(audit_.records.empty());

  grpc::ClientContext ctx;
  v1::Job job;
  EXPECT_EQ(restore_->StartDiskRestore(&ctx, {}, &job).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(RestoreServiceTest, DiskRestoreJobWritesTheBackedUpBytes) {
  v1::Job job;
  ASSERT_TRUE(StartDisk(tmp_ / "restore/vda.img", &job).ok());
  EXPECT_EQ(auth_.last_needed, Role::kOperator);
  EXPECT_EQ(job.type(), v1::JOB_TYPE_DISK_RESTORE);
  v1::Job done = Finished(job);
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error().message();
  std::string image = testing::ReadFile(shared_->dir / "disk.img");
  image.resize(kDiskSize);
  EXPECT_TRUE(testing::ReadFile(tmp_ / "restore/vda.img") == image);
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "restore/vda.img.partial"));
  EXPECT_EQ(done.disk_restore_result().disk(), "vda");
  EXPECT_EQ(done.disk_restore_result().size_bytes(), kDiskSize);
  EXPECT_EQ(done.progress().done_bytes(), kDiskSize);
  EXPECT_NE(done.disk_restore().snapshot().find("/snapshots/"), std::string::npos);
  EXPECT_EQ(done.disk_restore().snapshot().find("latest"), std::string::npos);

  ASSERT_EQ(audit_.records.size(), 1u);
  EXPECT_EQ(audit_.records[0].who, "veeam-prod");
  EXPECT_EQ(audit_.records[0].action, "restore-disk");
  EXPECT_NE(audit_.records[0].what.find("web01@"), std::string::npos);
  EXPECT_NE(audit_.records[0].what.find(" disk vda"), std::string::npos);
  EXPECT_NE(audit_.records[0].where.find(tmp_ / "restore/vda.img"), std::string::npos);
  EXPECT_NE(audit_.records[0].where.find(job.name() + " started"), std::string::npos);
}

TEST_F(RestoreServiceTest, ExistingTargetNeedsOverwrite) {
  testing::WriteFile(tmp_ / "restore/vda.img", "keep me");
  v1::Job job;
  std::string reason;
  grpc::Status st = StartDisk(tmp_ / "restore/vda.img", &job, &reason);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(reason, "TARGET_EXISTS");
  EXPECT_EQ(testing::ReadFile(tmp_ / "restore/vda.img"), "keep me");
}

TEST_F(RestoreServiceTest, TargetsOutsideTheRestoreRootsAreRefused) {
  std::filesystem::create_directories(tmp_ / "elsewhere");
  std::filesystem::create_directory_symlink(tmp_ / "elsewhere", tmp_ / "restore/out");
  for (std::string path : {tmp_ / "elsewhere/vda.img", tmp_ / "restore/../elsewhere/vda.img",
                           tmp_ / "restore/out/vda.img", std::string("/vda.img")}) {
    v1::Job job;
    std::string reason;
    grpc::Status st = StartDisk(path, &job, &reason);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << path;
    EXPECT_EQ(reason, "RESTORE_TARGET_NOT_ALLOWED") << path;
    std::string files_reason;
    EXPECT_EQ(
        StartFiles("/vda/data", std::filesystem::path(path).parent_path(), &job, &files_reason)
            .error_code(),
        grpc::StatusCode::PERMISSION_DENIED)
        << path;
  }
  EXPECT_TRUE(std::filesystem::is_empty(tmp_ / "elsewhere"));
  // Refusals are audited too, with the target asked for.
  ASSERT_EQ(audit_.records.size(), 8u);
  EXPECT_NE(audit_.records[0].where.find("outside the restore folders"), std::string::npos);
}

TEST_F(RestoreServiceTest, NoRestoreRootsMeansNoFileTargets) {
  context_.restore_roots.clear();
  v1::Job job;
  std::string reason;
  grpc::Status st = StartDisk(tmp_ / "restore/vda.img", &job, &reason);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(reason, "RESTORE_TARGET_NOT_ALLOWED");
  EXPECT_NE(st.error_message().find("restore_roots"), std::string::npos);
}

TEST_F(RestoreServiceTest, CancelledDiskRestoreLeavesNoFile) {
  v1::Job job;
  ASSERT_TRUE(StartDisk(tmp_ / "restore/vda.img", &job).ok());
  v1::CancelJobRequest cancel;
  cancel.set_name(job.name());
  grpc::ClientContext ctx;
  v1::Job cancelled;
  ASSERT_TRUE(
      v1::JobsService::NewStub(server_->channel())->CancelJob(&ctx, cancel, &cancelled).ok());
  v1::Job done = Finished(job);
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "restore/vda.img.partial"));
  // CancelJob may come after the end: then the job succeeded and the file is whole.
  if (done.state() == v1::JOB_STATE_SUCCEEDED) {
    EXPECT_EQ(std::filesystem::file_size(tmp_ / "restore/vda.img"), kDiskSize);
  } else {
    EXPECT_EQ(done.state(), v1::JOB_STATE_CANCELLED);
    EXPECT_FALSE(std::filesystem::exists(tmp_ / "restore/vda.img"));
  }
}

TEST_F(RestoreServiceTest, NbdTargetsMustBeConfigured) {
  v1::StartDiskRestoreRequest req;
  req.mutable_spec()->set_snapshot(kLatest);
  req.mutable_spec()->mutable_nbd()->set_uri("nbd://127.0.0.1:10809/vda");
  grpc::ClientContext ctx;
  v1::Job job;
  EXPECT_EQ(restore_->StartDiskRestore(&ctx, req, &job).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Reason(ctx), "RESTORE_TARGET_NOT_ALLOWED");
}

// An allowed entry is a whole URI, or (ending in '/') a server: never a longer host name, and
// never the same export with extra query parameters (a second socket=).
TEST_F(RestoreServiceTest, NbdTargetsMatchWholeServersOnly) {
  context_.restore_nbd_targets = {"nbd://10.20.0.9/", "nbd+unix:///vm1?socket=/run/vm1.sock"};
  for (const char* uri : {"nbd://10.20.0.99/vda", "nbd://10.20.0.9:10809/vda",
                          "nbd+unix:///vm1?socket=/run/vm1.sock.x",
                          "nbd+unix:///vm1?socket=/run/vm1.sock&socket=/run/vm2.sock",
                          "nbd://10.20.0.9/vda?tls-psk-file=/etc/shadow"}) {
    v1::StartDiskRestoreRequest req;
    req.mutable_spec()->set_snapshot(kLatest);
    req.mutable_spec()->mutable_nbd()->set_uri(uri);
    grpc::ClientContext ctx;
    v1::Job job;
    EXPECT_EQ(restore_->StartDiskRestore(&ctx, req, &job).error_code(),
              grpc::StatusCode::PERMISSION_DENIED)
        << uri;
    EXPECT_EQ(Reason(ctx), "RESTORE_TARGET_NOT_ALLOWED") << uri;
  }
}

TEST_F(RestoreServiceTest, FileRestoreJobWritesFilesAndFolders) {
  std::filesystem::create_directories(tmp_ / "restore/one");
  v1::Job job;
  ASSERT_TRUE(StartFiles("/vda/data/big.bin", tmp_ / "restore/one", &job).ok());
  v1::Job done = Finished(job);
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error().message();
  EXPECT_TRUE(testing::ReadFile(tmp_ / "restore/one/big.bin") == shared_->big);
  EXPECT_EQ(done.file_restore_result().file_count(), 1u);

  ASSERT_TRUE(StartFiles("/vda/data", tmp_ / "restore", &job).ok());
  done = Finished(job);
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error().message();
  EXPECT_TRUE(testing::ReadFile(tmp_ / "restore/data/big.bin") == shared_->big);
  EXPECT_EQ(std::filesystem::read_symlink(tmp_ / "restore/data/link"), "big.bin");
  EXPECT_EQ(done.file_restore_result().symlink_count(), 1u);
  EXPECT_TRUE(
      std::filesystem::equivalent(tmp_ / "restore/data/big.bin", tmp_ / "restore/data/same.bin"));
  EXPECT_EQ(done.file_restore_result().hard_link_count(), 1u);

  ASSERT_EQ(audit_.records.size(), 2u);
  EXPECT_EQ(audit_.records[1].action, "restore-files");
  EXPECT_NE(audit_.records[1].what.find(":/vda/data"), std::string::npos);
  EXPECT_NE(audit_.records[1].where.find(tmp_ / "restore"), std::string::npos);
}

TEST_F(RestoreServiceTest, FileRestoreOfAMissingPathIsNotFound) {
  v1::Job job;
  std::string reason;
  EXPECT_EQ(StartFiles("/vda/nothing", tmp_ / "restore", &job, &reason).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(reason, "PATH_NOT_FOUND");
}

}  // namespace
}  // namespace offhost::grpcapi
