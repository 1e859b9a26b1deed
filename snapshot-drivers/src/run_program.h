// Runs helper programs (qemu-img, qemu-nbd, ...); private to snapshot-drivers. No shell: argv[0]
// is looked up in PATH. Children get their own process group, so a Ctrl-C at the terminal
// cancels the proxy (which then stops them in order) instead of killing them under a running
// read, and SIGTERM when the thread that started them dies, so a proxy killed with -9 leaves no
// export holding an image's lock. They inherit none of the proxy's files.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::snapshot_drivers {

// Runs to the end and returns its stdout; a failure's error holds its stderr.
Result<std::string> RunProgramOutput(const std::vector<std::string>& argv);
Status RunProgram(const std::vector<std::string>& argv);

// Starts a long-lived helper with its stderr in the file `log_path`; stop it with kill() and
// WaitProgram().
Result<pid_t> StartProgram(const std::vector<std::string>& argv, const std::string& log_path);
// Waits for a started program to end: its exit code, or 128 + the signal that ended it.
int WaitProgram(pid_t pid);

}  // namespace offhost::snapshot_drivers
