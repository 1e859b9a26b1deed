// Each subcommand lives in its own cmd_<verb>.cc and registers itself into the CLI11 app;
// `run` is set to the chosen command's action and returns the process exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace offhost::cli {

using RunFn = std::function<int()>;

void AddDatastoreCommand(CLI::App& app, RunFn* run);
void AddBackupCommand(CLI::App& app, RunFn* run);
void AddSnapshotsCommand(CLI::App& app, RunFn* run);
void AddRestoreCommand(CLI::App& app, RunFn* run);
void AddVerifyCommand(CLI::App& app, RunFn* run);
void AddFilesCommands(CLI::App& app, RunFn* run);
void AddMountCommand(CLI::App& app, RunFn* run);
void AddFindCommands(CLI::App& app, RunFn* run);
void AddDiscoverCommand(CLI::App& app, RunFn* run);
void AddJobsCommand(CLI::App& app, RunFn* run);
void AddInventoryCommands(CLI::App& app, RunFn* run);  // hosts, vms
void AddPruneCommand(CLI::App& app, RunFn* run);
void AddExportCommand(CLI::App& app, RunFn* run);  // instant recovery
void AddScheduleCommand(CLI::App& app, RunFn* run);
void AddGcCommand(CLI::App& app, RunFn* run);

}  // namespace offhost::cli
