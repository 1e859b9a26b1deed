// What offhost needs from a libvirt domain XML: its disks and whether each can be backed up.
#pragma once

#include <string>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::snapshot_drivers {

struct DomainDisk {
  std::string target;   // "vda"
  std::string format;   // driver type: "qcow2", "raw", ...
  std::string exclude;  // non-empty: why this disk cannot be in a backup
  std::string source;   // the file, device or volume behind it
};

Result<std::vector<DomainDisk>> ParseDomainDisks(const std::string& xml);

}  // namespace offhost::snapshot_drivers
