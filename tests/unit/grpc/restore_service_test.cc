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

#include "grpc_test_util.h"
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

  struct Shared {
    TempDir dir;
    std::string big;
  };
  static Shared* shared_;

  FakeAuthorizer auth_;
  FakeAuditLog audit_;
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

TEST_F(RestoreServiceTest, FoldersAndSymlinksNeedTarWhichIsNotServedYet) {
  Download folder = Get("/vda/data");
  EXPECT_EQ(folder.status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(folder.status.error_message().find("tar"), std::string::npos);
  Download link = Get("/vda/data/link");
  EXPECT_EQ(link.status.error_code(), grpc::StatusCode::UNIMPLEMENTED);

  Download raw_folder = Get("/vda/data", 0, 0, v1::DOWNLOAD_FORMAT_RAW);
  EXPECT_EQ(raw_folder.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(raw_folder.reason, "NOT_A_REGULAR_FILE");
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

TEST_F(RestoreServiceTest, RestoreJobsAreNotServedYet) {
  grpc::ClientContext ctx;
  v1::Job job;
  grpc::Status st = restore_->StartDiskRestore(&ctx, {}, &job);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(auth_.last_needed, Role::kOperator);
  grpc::ClientContext ctx2;
  EXPECT_EQ(restore_->StartFileRestore(&ctx2, {}, &job).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace offhost::grpcapi
