// grpcapi::ReleaseInterruptedBackups: at offhostd's start, each backup job a crashed daemon
// left running gets its VM's leftovers released by its driver (a fake one here), and the job
// says so; a host that does not answer is retried, then left pending with the reason; a VM
// that is no longer configured is settled with the reason.
#include "offhost/grpc/leftovers.h"

#include <gtest/gtest.h>

#include "job_store.h"  // proxy/src: a record as a crashed daemon leaves it
#include "offhost/proxy/job_engine.h"
#include "offhost/snapshot-drivers/driver.h"
#include "offhost/storage/datastore.h"
#include "offhost/v1/jobs.pb.h"
#include "test_util.h"

namespace offhost::grpcapi {
namespace {

namespace sd = snapshot_drivers;
using offhost::testing::TempDir;

// What the fake driver does: fail this many calls with Unavailable, then release `released`.
struct FakeHost {
  int failures = 0;
  int calls = 0;
  std::string last_parent;
  std::vector<std::string> released;
};
FakeHost g_host;

class LeftoverDriver final : public sd::SnapshotDriver {
 public:
  Result<sd::VmIdentity> Identify(const sd::SnapshotRequest& req) override {
    return sd::VmIdentity{req.vm, "5d0c1e9a-0000-4000-8000-00000000beef"};
  }
  Result<std::unique_ptr<sd::PointInTimeView>> Take(const sd::SnapshotRequest&) override {
    return Status::NotSupported("not in this test");
  }
  Result<std::vector<std::string>> ReleaseLeftovers(const sd::SnapshotRequest& req) override {
    ++g_host.calls;
    g_host.last_parent = req.parent_checkpoint;
    if (g_host.failures-- > 0) return Status::Unavailable("host h did not answer");
    return g_host.released;
  }
};
OFFHOST_REGISTER_DRIVER("test-leftovers", "test: releases leftovers", LeftoverDriver);

class LeftoversTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_host = {};
    ASSERT_TRUE(storage::Datastore::Init(dir_ / "ds", {}).ok());
    context_.datastores = {{"main", dir_ / "ds", ""}};
    context_.hosts = {{"h", "test-leftovers", {}, false, "main"}};
    context_.vms = {{"vm1", "h", "", {}}};
  }

  // A backup job of `vm` left RUNNING in the job database, as by a daemon killed with -9;
  // then the engine is opened as at the next start.
  std::string CrashedBackup(const std::string& vm) {
    proxy::JobRecord job;
    job.id = "018f0000-0000-7000-8000-000000000001";
    job.type = "backup";
    v1::BackupSpec spec;
    spec.set_vm("hosts/h/vms/" + vm);
    job.spec = spec.SerializeAsString();
    job.state = proxy::JobState::kRunning;
    job.create_ms = job.start_ms = 1;
    {
      auto store = proxy::JobStore::Open(dir_ / "state");
      EXPECT_TRUE(store.ok());
      EXPECT_TRUE((*store)->Put(job, true).ok());
    }
    jobs_ = std::move(*proxy::JobEngine::Open({.state_dir = dir_ / "state"}));
    context_.jobs = jobs_.get();
    return job.id;
  }

  std::vector<std::string> Run() {
    std::vector<std::string> lines;
    std::atomic<bool> stop{false};
    ReleaseInterruptedBackups(context_, stop,
                              [&](bool, const std::string& m) { lines.push_back(m); },
                              {.attempts = 3, .retry_delay = std::chrono::milliseconds(10)});
    return lines;
  }

  TempDir dir_;
  ServiceContext context_;
  std::unique_ptr<proxy::JobEngine> jobs_;
};

TEST_F(LeftoversTest, ReleasedLeftoversAreWrittenOnTheJob) {
  g_host.released = {"NBD export offhost-export-vd0", "checkpoint offhost-2"};
  std::string id = CrashedBackup("vm1");
  ASSERT_EQ(jobs_->PendingLeftovers().size(), 1u);
  std::vector<std::string> log = Run();
  EXPECT_EQ(g_host.calls, 1);
  EXPECT_EQ(g_host.last_parent, "");  // no snapshot of vm1 yet: no parent to keep
  EXPECT_TRUE(jobs_->PendingLeftovers().empty());
  proxy::JobRecord job = *jobs_->Get(id);
  EXPECT_EQ(job.state, proxy::JobState::kInterrupted);
  ASSERT_EQ(job.warnings.size(), 1u);
  EXPECT_EQ(job.warnings[0],
            "released at offhostd's start, left by the interrupted backup of VM vm1 (host h): "
            "NBD export offhost-export-vd0; checkpoint offhost-2");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "job " + id + ": " + job.warnings[0]);
}

TEST_F(LeftoversTest, HostThatDoesNotAnswerIsRetriedThenLeftPending) {
  g_host.failures = 100;
  std::string id = CrashedBackup("vm1");
  std::vector<std::string> log = Run();
  EXPECT_EQ(g_host.calls, 3);
  EXPECT_EQ(jobs_->PendingLeftovers().size(), 1u);  // the next start tries again
  proxy::JobRecord job = *jobs_->Get(id);
  ASSERT_EQ(job.warnings.size(), 1u);
  EXPECT_EQ(job.warnings[0],
            "the leftovers of the interrupted backup of VM vm1 (host h) could not be released: "
            "host h did not answer; offhostd tries again at its next start, and the VM's next "
            "backup removes them");
  EXPECT_EQ(log.size(), 4u);  // three attempts, then the outcome

  // A later start where the host answers again.
  g_host.failures = 1;
  g_host.calls = 0;
  jobs_.reset();
  jobs_ = std::move(*proxy::JobEngine::Open({.state_dir = dir_ / "state"}));
  context_.jobs = jobs_.get();
  Run();
  EXPECT_EQ(g_host.calls, 2);
  EXPECT_TRUE(jobs_->PendingLeftovers().empty());
  EXPECT_EQ(jobs_->Get(id)->warnings.back(),
            "leftovers of the interrupted backup of VM vm1 (host h): none were found");
}

TEST_F(LeftoversTest, VmNoLongerConfiguredIsSettledWithTheReason) {
  std::string id = CrashedBackup("gone");
  Run();
  EXPECT_EQ(g_host.calls, 0);
  EXPECT_TRUE(jobs_->PendingLeftovers().empty());
  std::string warning = jobs_->Get(id)->warnings.at(0);
  EXPECT_NE(warning.find("were not released: no VM hosts/h/vms/gone in offhostd's configuration"),
            std::string::npos)
      << warning;
}

}  // namespace
}  // namespace offhost::grpcapi
