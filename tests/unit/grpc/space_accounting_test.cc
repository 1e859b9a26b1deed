// DatastoreStatus's space accounting through the service: the first status call starts a
// count in the background, later calls show it. Checked against the chunk files themselves:
// stored bytes are their sizes, unique bytes the uncompressed sizes of the chunks snapshots
// use, and a chunk no snapshot uses is unreferenced.
#include <chrono>
#include <filesystem>
#include <thread>

#include "grpc_test_util.h"
#include "offhost/storage/chunk_codec.h"
#include "offhost/v1/datastore.grpc.pb.h"

namespace offhost::grpcapi {
namespace {

using offhost::testing::TempDir;
using testing::FakeAuthorizer;
using testing::InProcessServer;

constexpr uint64_t kDiskSize = 4 << 20;

// A disk image with `seed`-dependent data in its first MiB and zeroes after.
std::string Image(char seed) {
  std::string image(1 << 20, '\0');
  for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<char>(seed + i * 7 % 251);
  return image;
}

TEST(SpaceAccountingTest, CountsUniqueStoredAndUnreferencedBytes) {
  TempDir dir;
  storage::DatastoreConfig config;
  config.chunk_size = 64 * 1024;
  ASSERT_TRUE(storage::Datastore::Init(dir / "ds", config).ok());
  storage::ChunkId stray;
  {
    auto ds = std::move(*storage::Datastore::Open(dir / "ds", true));
    testing::BackupImage(*ds, "web01", Image('a'), kDiskSize, false);
    testing::BackupImage(*ds, "web01", Image('a'), kDiskSize, false);  // all deduplicated
    testing::BackupImage(*ds, "db01", Image('b'), kDiskSize, false);
    // A chunk no snapshot uses, as a failed backup leaves them.
    std::string data(64 * 1024, 'z');
    stray.bytes[0] = 1;  // any name will do: the accounting reads the header, not the data
    storage::ChunkEncoder encoder;
    auto encoded = encoder.Encode(stray, data);
    ASSERT_TRUE(encoded.ok());
    ASSERT_TRUE(*ds->chunks().Put(stray, *encoded));
    ASSERT_TRUE(ds->chunks().Sync().ok());
  }
  // What the chunk files say.
  uint64_t stored = 0, unique = 0, unreferenced = 0, files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "ds")) {
    std::string name = e.path().filename();
    if (!e.is_regular_file() || name.size() != 64 || !storage::ChunkId::FromHex(name)) continue;
    std::string file = testing::ReadFile(e.path());
    auto header = storage::DecodeChunkHeader({file.data(), file.size()});
    ASSERT_TRUE(header.ok());
    ++files;
    stored += file.size();
    (name == stray.Hex() ? unreferenced : unique) +=
        name == stray.Hex() ? file.size() : header->raw_size;
  }
  ASSERT_GT(unreferenced, 0u);
  ASSERT_EQ(unique, 2u << 20);  // two distinct MiB of data; the zeroes are never stored

  FakeAuthorizer auth;
  ServiceContext context;
  context.authorizer = &auth;
  context.datastores = {{"main", dir / "ds", ""}};
  InProcessServer server(context);
  auto stub = v1::DatastoreService::NewStub(server.channel());
  v1::DatastoreStatus status;
  for (int i = 0; i < 200 && !status.has_accounting_time(); ++i) {
    if (i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    grpc::ClientContext ctx;
    v1::GetDatastoreStatusRequest req;
    req.set_name("datastores/main");
    ASSERT_TRUE(stub->GetDatastoreStatus(&ctx, req, &status).ok());
  }
  ASSERT_TRUE(status.has_accounting_time()) << "the count never ended";
  EXPECT_EQ(status.logical_bytes(), 3 * kDiskSize);
  EXPECT_EQ(status.chunk_count(), files);
  EXPECT_EQ(status.stored_bytes(), stored);
  EXPECT_EQ(status.unique_bytes(), unique);
  EXPECT_EQ(status.unreferenced_bytes(), unreferenced);
  EXPECT_DOUBLE_EQ(status.dedupe_ratio(), 3.0 * kDiskSize / unique);  // 6.0
  EXPECT_DOUBLE_EQ(status.compression_ratio(),
                   static_cast<double>(unique) / static_cast<double>(stored - unreferenced));
  EXPECT_DOUBLE_EQ(status.total_ratio(),
                   3.0 * kDiskSize / static_cast<double>(stored - unreferenced));
}

}  // namespace
}  // namespace offhost::grpcapi
