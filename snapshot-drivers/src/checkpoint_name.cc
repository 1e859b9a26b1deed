#include "checkpoint_name.h"

#include <unistd.h>

#include <chrono>
#include <ctime>

namespace offhost::snapshot_drivers {

std::string NewCheckpointName() {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  time_t t = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
  return std::string(kCheckpointPrefix) + buf + "." + std::to_string(1000 + ms % 1000).substr(1) +
         "Z-" + std::to_string(::getpid());
}

}  // namespace offhost::snapshot_drivers
