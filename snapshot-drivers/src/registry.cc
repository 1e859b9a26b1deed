#include <algorithm>
#include <mutex>

#include "offhost/snapshot-drivers/driver.h"

namespace offhost::snapshot_drivers {
namespace {

struct Entry {
  std::string summary;
  DriverFactory factory;
};

std::map<std::string, Entry>& Table() {
  static std::map<std::string, Entry> table;  // constructed on first use, before any registrar
  return table;
}

}  // namespace

Result<VmDescription> SnapshotDriver::Describe(const SnapshotRequest&) {
  return Status::NotSupported("this driver cannot describe a VM without backing it up");
}

Result<std::vector<std::string>> SnapshotDriver::ReleaseLeftovers(const SnapshotRequest&) {
  return std::vector<std::string>();
}

bool RegisterDriver(const char* name, const char* summary, DriverFactory factory) {
  Table()[name] = {summary, factory};
  return true;
}

Result<std::unique_ptr<SnapshotDriver>> MakeDriver(const std::string& name) {
  auto it = Table().find(name);
  if (it == Table().end()) {
    std::string known;
    for (const auto& [n, e] : Table()) known += (known.empty() ? "" : ", ") + n;
    return Status::InvalidArgument("unknown driver '" + name + "'; known drivers: " + known);
  }
  return it->second.factory();
}

std::vector<std::string> DescribeDrivers() {
  std::vector<std::string> out;
  for (const auto& [n, e] : Table()) out.push_back(n + ": " + e.summary);
  return out;
}

Result<std::vector<std::string>> SelectDisks(const SnapshotRequest& request,
                                             const std::vector<std::string>& all,
                                             const std::string& vm) {
  std::vector<std::string> wanted;
  for (const auto& [key, value] : request.settings) {
    if (key.starts_with("only.")) wanted.push_back(key.substr(5));
  }
  if (wanted.empty()) return all;
  for (const auto& w : wanted) {
    if (std::find(all.begin(), all.end(), w) == all.end()) {
      std::string names;
      for (const auto& n : all) names += (names.empty() ? "" : ", ") + n;
      return Status::NotFound("VM " + vm + " has no disk '" + w + "' (it has: " + names + ")");
    }
  }
  return wanted;
}

}  // namespace offhost::snapshot_drivers
