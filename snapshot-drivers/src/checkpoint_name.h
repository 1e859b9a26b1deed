// Names of the checkpoints offhost creates on hypervisors (private to snapshot-drivers).
#pragma once

#include <string>

namespace offhost::snapshot_drivers {

inline constexpr char kCheckpointPrefix[] = "offhost-";

// "offhost-20261125T021510.123Z-4711": unique per backup (time to the millisecond and this
// process), sorted by time, recognisably ours after a crash.
std::string NewCheckpointName();

}  // namespace offhost::snapshot_drivers
