// The scheduler loop and its backup slots (offhost/grpc/scheduler.h, docs/scheduler.md).
#include "offhost/grpc/scheduler.h"

#include <algorithm>

#include "backup_job.h"
#include "jobs.h"
#include "names.h"

namespace offhost::grpcapi {
namespace {

constexpr auto kTick = std::chrono::seconds(1);
constexpr char kCreator[] = "scheduler";

int64_t SystemNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const HostConfig* HostOf(const ServiceContext& context, const VmConfig& vm) {
  for (const HostConfig& h : context.hosts) {
    if (h.name == vm.host) return &h;
  }
  return nullptr;
}

}  // namespace

BackupScheduler::BackupScheduler(ServiceContext& context, proxy::SlotLimits limits, Clock clock)
    : context_(context), slots_(std::move(limits)), clock_(clock ? clock : SystemNow) {
  for (const HostConfig& h : context_.hosts) {
    if (h.bandwidth > 0) host_rates_[h.name] = std::make_shared<proxy::RateLimiter>(h.bandwidth);
  }
  // Staggered fulls: per host and period, the VMs in name order get evenly spread days.
  std::map<std::pair<std::string, int>, std::vector<std::string>> groups;
  for (const VmConfig& vm : context_.vms) {
    if (vm.policy.full_every_days > 0) {
      groups[{vm.host, vm.policy.full_every_days}].push_back(vm.name);
    }
  }
  for (auto& [key, names] : groups) {
    std::sort(names.begin(), names.end());
    std::vector<int> offsets = proxy::StaggerOffsets(static_cast<int>(names.size()), key.second);
    for (size_t i = 0; i < names.size(); ++i) full_offsets_[names[i]] = offsets[i];
  }
}

BackupScheduler::~BackupScheduler() { Stop(); }

void BackupScheduler::Start() {
  std::lock_guard lock(mu_);
  int64_t now = clock_();
  for (const VmConfig& vm : context_.vms) {
    if (vm.policy.schedule) next_run_[vm.name] = proxy::NextFiring(*vm.policy.schedule, now);
  }
  if (!thread_.joinable() && !next_run_.empty()) thread_ = std::thread([this] { Loop(); });
}

void BackupScheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<proxy::RateLimiter> BackupScheduler::HostRate(const std::string& host) const {
  auto it = host_rates_.find(host);
  return it == host_rates_.end() ? nullptr : it->second;
}

int BackupScheduler::FullOffset(const VmConfig& vm) const {
  auto it = full_offsets_.find(vm.name);
  return it == full_offsets_.end() ? 0 : it->second;
}

bool BackupScheduler::IsFull(const VmConfig& vm, int64_t t) const {
  return vm.policy.full_every_days > 0 &&
         proxy::IsFullDay(t, vm.policy.full_every_days, FullOffset(vm));
}

std::vector<BackupScheduler::Entry> BackupScheduler::List() const {
  std::lock_guard lock(mu_);
  std::vector<Entry> out;
  for (const VmConfig& vm : context_.vms) {
    auto it = next_run_.find(vm.name);
    out.push_back(
        {&vm, HostOf(context_, vm), it == next_run_.end() ? 0 : it->second, FullOffset(vm)});
  }
  return out;
}

Result<proxy::JobRecord> BackupScheduler::RunNow(const VmConfig& vm) {
  if (!vm.policy.schedule) {
    return Status::FailedPrecondition("VM " + vm.name + " has no schedule in the configuration");
  }
  // A scheduled run does not queue behind another backup of the same VM: that one is it.
  for (const proxy::JobRecord& job :
       context_.jobs->List({.types = {"backup"}, .keys = {{"vm_id", vm.name}}})) {
    if (!proxy::IsTerminal(job.state)) return job;
  }
  int64_t now = clock_();
  v1::BackupSpec spec;
  spec.set_vm("hosts/" + vm.host + "/vms/" + vm.name);
  spec.set_full(IsFull(vm, now));
  BackupPlan plan;
  grpc::ServerContext unused;  // PlanBackup's error details are for RPCs; the message is enough
  grpc::Status st = PlanBackup(context_, &unused, spec, &plan);
  if (!st.ok())
    return Status::FailedPrecondition("plan the backup of " + vm.name + ": " + st.error_message());
  google::protobuf::Map<std::string, std::string> labels;
  labels["offhost.schedule"] = vm.policy.schedule->text;
  proxy::JobRecord record = NewJobRecord(v1::JOB_TYPE_BACKUP, plan.spec, "", labels, kCreator);
  return StartBackupJob(context_, plan, std::move(record),
                        {.scheduler = this, .scheduled = true, .scheduled_at = now});
}

void BackupScheduler::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    int64_t now = clock_();
    std::vector<const VmConfig*> due;
    for (const VmConfig& vm : context_.vms) {
      auto it = next_run_.find(vm.name);
      if (it == next_run_.end() || it->second > now) continue;
      due.push_back(&vm);
      it->second = proxy::NextFiring(*vm.policy.schedule, now);
    }
    lock.unlock();
    for (const VmConfig* vm : due) {
      Result<proxy::JobRecord> job = RunNow(*vm);
      if (!job.ok() && on_error_) on_error_(vm->name + ": " + job.status().message());
    }
    lock.lock();
    wake_.wait_for(lock, kTick, [this] { return stop_; });
  }
}

}  // namespace offhost::grpcapi
