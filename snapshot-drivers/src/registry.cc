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

}  // namespace offhost::snapshot_drivers
