// offhostd's log: one line per message on stderr, prefixed with its sd-daemon(3) priority
// ("<6>offhostd: listening on ..."). journald reads the prefix as the priority and adds the
// time itself, so lines carry no timestamp; run by hand, they are still readable.
#pragma once

#include <string>

namespace offhost::daemon {

enum class LogLevel { kError = 3, kWarning = 4, kNotice = 5, kInfo = 6 };

// Writes "<N>offhostd: MESSAGE\n" in one write(2), so lines from several threads never mix.
void Log(LogLevel level, const std::string& message);

// Sends gRPC's own log lines (normally on stderr with their own timestamps) through Log().
void RouteGrpcLogging();

}  // namespace offhost::daemon
