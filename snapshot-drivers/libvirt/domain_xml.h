// What offhost needs from a libvirt domain XML: its disks and whether each can be backed up.
#pragma once

#include <string>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::snapshot_drivers {

struct DomainDisk {
  std::string target;       // "vda"
  std::string format;       // driver type: "qcow2", "raw", ...
  std::string exclude;      // non-empty: why this disk cannot be in a backup
  std::string source;       // the file, device or volume behind it
  std::string full_reason;  // set by the driver: why this disk is not incremental
};

Result<std::vector<DomainDisk>> ParseDomainDisks(const std::string& xml);

// The disks a checkpoint XML tracks with a bitmap (checkpoint='bitmap').
std::vector<std::string> CheckpointBitmapDisks(const std::string& xml);

// Whether the domain has the virtio channel the QEMU guest agent answers on.
bool HasGuestAgentChannel(const std::string& xml);

}  // namespace offhost::snapshot_drivers
