// offhostd's audit log (proxy/daemon/audit_log.h): whole JSON lines, appended, from several
// threads at once.
#include "audit_log.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_util.h"

namespace offhost::daemon {
namespace {

std::vector<nlohmann::json> ReadRecords(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

TEST(AuditLogTest, OneJsonLinePerRecordWithEveryField) {
  testing::TempDir dir;
  std::string path = dir / "log/audit.log";  // the folder is made
  {
    Result<std::unique_ptr<FileAuditLog>> log = FileAuditLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status().message();
    grpcapi::Principal who{"veeam", grpcapi::Role::kOperator, "token", "ipv4:10.20.0.9:5312"};
    (*log)->Record(who, "restore-file", "datastores/main/vms/web01/snapshots/x:/vda1/etc",
                   "/restore\n\xff");  // a newline and a byte that is not UTF-8
  }
  std::vector<nlohmann::json> records = ReadRecords(path);
  ASSERT_EQ(records.size(), 1u);
  const nlohmann::json& r = records[0];
  EXPECT_EQ(r["who"], "veeam");
  EXPECT_EQ(r["role"], "operator");
  EXPECT_EQ(r["method"], "token");
  EXPECT_EQ(r["peer"], "ipv4:10.20.0.9:5312");
  EXPECT_EQ(r["action"], "restore-file");
  EXPECT_EQ(r["what"], "datastores/main/vms/web01/snapshots/x:/vda1/etc");
  EXPECT_EQ(r["where"], "/restore\n\xEF\xBF\xBD");
  EXPECT_EQ(r["time"].get<std::string>().size(), std::string("2026-11-25T01:30:49.123Z").size());
}

TEST(AuditLogTest, AppendsAcrossReopenAndThreads) {
  testing::TempDir dir;
  std::string path = dir / "audit.log";
  for (int round = 0; round < 2; ++round) {
    Result<std::unique_ptr<FileAuditLog>> log = FileAuditLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status().message();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        grpcapi::Principal who{"t" + std::to_string(t), grpcapi::Role::kAdmin, "token", "unix:"};
        for (int i = 0; i < 25; ++i) (*log)->Record(who, "download", std::string(500, 'x'), "-");
      });
    }
    for (std::thread& t : threads) t.join();
  }
  EXPECT_EQ(ReadRecords(path).size(), 200u);  // every line parses: none interleaved
}

TEST(AuditLogTest, UnwritableFolderIsAnError) {
  Result<std::unique_ptr<FileAuditLog>> log = FileAuditLog::Open("/proc/offhost/audit.log");
  ASSERT_FALSE(log.ok());
  EXPECT_NE(log.status().message().find("/proc/offhost/audit.log"), std::string::npos);
}

}  // namespace
}  // namespace offhost::daemon
