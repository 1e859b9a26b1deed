// offhostd — the offhost daemon: serves the offhost.v1 gRPC API (docs/api.md).
//
//   offhostd [--config FILE]           run (default /etc/offhostd/offhostd.toml)
//   offhostd --check-config FILE       validate FILE and exit: 0 valid, 1 not
//   offhostd hash-token < TOKEN        print the SHA-256 for a [[token]] sha256 key
//
// Logs go to stderr with sd-daemon priority prefixes, for journald (log.h). SIGTERM or
// SIGINT stops the server (running calls get a grace period) and exits 0.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <iterator>

#include "authorizer.h"
#include "config.h"
#include "daemon.h"
#include "log.h"

namespace {

using namespace offhost::daemon;

constexpr int kExitOk = 0, kExitFailure = 1, kExitUsage = 2;
constexpr std::chrono::seconds kShutdownGrace{10};

int HashTokenCommand() {
  // The token comes on stdin, so it never shows in `ps` or a shell history.
  std::string token(std::istreambuf_iterator<char>(std::cin), {});
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty()) {
    std::cerr << "offhostd hash-token: no token on stdin; e.g. "
                 "`head -c 32 /dev/urandom | base64 | tee token | offhostd hash-token`\n";
    return kExitUsage;
  }
  std::cout << HashToken(token) << "\n";
  return kExitOk;
}

int CheckConfigCommand(const std::string& path) {
  offhost::Result<DaemonConfig> config = LoadConfig(path);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return kExitFailure;
  }
  std::cout << path << ": valid (" << config->listen.size() << " TCP listeners, "
            << config->tokens.size() << " tokens, " << config->datastores.size()
            << " datastores)\n";
  return kExitOk;
}

// Returns the signal that ends the daemon. SIGTERM and SIGINT are blocked in every thread
// (gRPC's included, which inherit the mask) and taken here, synchronously, so shutdown runs
// in ordinary code rather than in a signal handler.
int WaitForStopSignal(const sigset_t& signals) {
  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  return signal;
}

int Serve(const std::string& config_path) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  RouteGrpcLogging();

  offhost::Result<DaemonConfig> config = LoadConfig(config_path);
  if (!config.ok()) {
    // One log line per problem, so journald shows each as an error.
    std::string message = config.status().message();
    for (size_t start = 0, end; start < message.size(); start = end + 1) {
      end = message.find('\n', start);
      if (end == std::string::npos) end = message.size();
      Log(LogLevel::kError, message.substr(start, end - start));
    }
    Log(LogLevel::kError,
        "not started: fix the configuration (offhostd --check-config " + config_path + ")");
    return kExitFailure;
  }
  offhost::Result<std::unique_ptr<Daemon>> daemon = Daemon::Start(std::move(config).value());
  if (!daemon.ok()) {
    Log(LogLevel::kError, "not started: " + daemon.status().message());
    return kExitFailure;
  }
  int signal = WaitForStopSignal(signals);
  Log(LogLevel::kNotice, std::string("stopping (") + sigabbrev_np(signal) + ")");
  (*daemon)->Shutdown(kShutdownGrace);
  Log(LogLevel::kNotice, "stopped");
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"offhostd — the offhost daemon: the offhost.v1 gRPC API"};
  app.set_version_flag("--version", std::string("offhostd 0.1.0"));
  std::string config_path = kDefaultConfigPath, check_path;
  app.add_option("--config", config_path, "configuration file")->capture_default_str();
  app.add_option("--check-config", check_path, "validate this configuration file and exit");
  CLI::App* hash = app.add_subcommand(
      "hash-token", "read a token on stdin and print its SHA-256, for a [[token]] sha256 key");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  if (hash->parsed()) return HashTokenCommand();
  if (!check_path.empty()) return CheckConfigCommand(check_path);
  return Serve(config_path);
}
