// BackupScheduler (offhost/grpc/scheduler.h) with an injected clock: next runs from the
// calendar, fulls staggered per host and period over the VMs in name order.
#include "offhost/grpc/scheduler.h"

#include <gtest/gtest.h>

#include <ctime>
#include <map>
#include <set>

namespace offhost::grpcapi {
namespace {

int64_t Utc(int y, int mo, int d, int h = 0, int mi = 0) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return timegm(&tm);
}

VmConfig Vm(const std::string& name, const std::string& host, const char* schedule,
            int full_every) {
  VmConfig vm;
  vm.name = name;
  vm.host = host;
  if (schedule != nullptr) vm.policy.schedule = *proxy::ParseCalendarEvent(schedule);
  vm.policy.full_every_days = full_every;
  return vm;
}

TEST(BackupSchedulerTest, NextRunsAndStaggeredFullsPerHost) {
  ServiceContext context;
  context.hosts = {{.name = "kvm1", .driver = "image"}, {.name = "kvm2", .driver = "image"}};
  // Declared out of name order: offsets follow the names.
  for (const char* name : {"f", "b", "d", "a", "e", "c"}) {
    context.vms.push_back(Vm(name, "kvm1", "mon..fri 01:30", 7));
  }
  context.vms.push_back(Vm("x", "kvm2", "daily 22:00", 7));
  context.vms.push_back(Vm("y", "kvm2", nullptr, 0));
  int64_t now = Utc(2026, 12, 5, 12);  // a Saturday
  BackupScheduler sched(context, {}, [&] { return now; });
  sched.Start();
  std::map<std::string, BackupScheduler::Entry> by_name;
  for (const auto& e : sched.List()) by_name[e.vm->name] = e;
  EXPECT_EQ(by_name["a"].next_run, Utc(2026, 12, 7, 1, 30));  // Monday
  EXPECT_EQ(by_name["x"].next_run, Utc(2026, 12, 5, 22));
  EXPECT_EQ(by_name["y"].next_run, 0);
  // kvm1's six VMs: days 0..5 of the week in name order; kvm2's one VM: day 0 of its own.
  std::vector<int> offsets;
  for (const char* n : {"a", "b", "c", "d", "e", "f"}) offsets.push_back(by_name[n].full_offset);
  EXPECT_EQ(offsets, (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(by_name["x"].full_offset, 0);
  // Over four weeks of nightly runs no night has two fulls of kvm1, and each VM has one a week.
  std::map<std::string, int> fulls;
  for (int day = 0; day < 28; ++day) {
    int tonight = 0;
    for (const VmConfig& vm : context.vms) {
      if (vm.host != "kvm1" || !sched.IsFull(vm, now + day * 86400)) continue;
      ++tonight;
      ++fulls[vm.name];
    }
    EXPECT_LE(tonight, 1) << "day " << day;
  }
  for (const char* n : {"a", "b", "c", "d", "e", "f"}) EXPECT_EQ(fulls[n], 4) << n;
  sched.Stop();
}

}  // namespace
}  // namespace offhost::grpcapi
