// Shared by the offhost.v1 service tests: a fake Authorizer, an in-process server over
// MakeServices, ext4 images made at run time (mkfs.ext4 -d) and backed up into a datastore,
// and the ErrorInfo reason a failed call carried.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "offhost/grpc/service_context.h"
#include "offhost/proxy/backup.h"
#include "offhost/v1/common.pb.h"
#include "test_util.h"

namespace offhost::grpcapi::testing {

// Lets every caller in as `principal`, or turns everyone away with `status`.
class FakeAuthorizer : public Authorizer {
 public:
  grpc::Status Check(grpc::ServerContext*, Role needed, Principal* caller) override {
    last_needed = needed;
    *caller = principal;
    return status;
  }
  grpc::Status status = grpc::Status::OK;
  Principal principal{"veeam-prod", Role::kOperator, "token", "ipv4:10.20.0.9:53122"};
  Role last_needed = Role::kAdmin;
};

inline bool Have(const char* tool) {
  return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

inline void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The bytes of an ext4 file system of `size` bytes holding the tree at `root`.
inline std::string Ext4Image(const std::string& root, const std::string& image, uint64_t size) {
  std::filesystem::remove(image);
  std::string cmd = "mkfs.ext4 -q -F -d " + root + " " + image + " " + std::to_string(size / 1024) +
                    "k >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return ReadFile(image);
}

// One backup of a single-disk VM ("vda") whose disk holds `image`.
inline void BackupImage(storage::Datastore& ds, const std::string& vm, const std::string& image,
                        uint64_t disk_size, bool catalog) {
  auto disk = std::make_shared<offhost::testing::MemoryDisk>(disk_size);
  disk->Put(0, image);
  std::vector<proxy::BackupDisk> disks{{"vda", disk, "", ""}};
  proxy::BackupOptions o;
  o.threads = 2;
  o.catalog = catalog;
  o.meta.driver = "nbd";
  auto r = proxy::RunBackup(ds, vm, disks, o);
  ASSERT_TRUE(r.ok()) << r.status().message();
}

// The ErrorInfo reason a failed call carried (docs/api.md "Errors"), "(none)" without one.
inline std::string Reason(const grpc::ClientContext& ctx) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find("offhost-error-bin");
  if (it == trailers.end()) return "(none)";
  v1::ErrorInfo info;
  info.ParseFromString(std::string(it->second.data(), it->second.size()));
  return info.reason();
}

// Every service of MakeServices on an in-process server.
class InProcessServer {
 public:
  explicit InProcessServer(ServiceContext& context) : services_(MakeServices(context)) {
    grpc::ServerBuilder builder;
    for (auto& s : services_) builder.RegisterService(s.get());
    server_ = builder.BuildAndStart();
  }
  ~InProcessServer() { server_->Shutdown(); }
  std::shared_ptr<grpc::Channel> channel() {
    return server_->InProcessChannel(grpc::ChannelArguments());
  }

 private:
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace offhost::grpcapi::testing
