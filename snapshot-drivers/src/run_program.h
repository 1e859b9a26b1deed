// Runs a helper program (qemu-img, ...) and waits for it; private to snapshot-drivers.
#pragma once

#include <string>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::snapshot_drivers {

// Runs argv[0] (looked up in PATH) with no shell; stderr is captured into the error.
Status RunProgram(const std::vector<std::string>& argv);

}  // namespace offhost::snapshot_drivers
