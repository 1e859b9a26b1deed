// offhost — the operator CLI.
#include <iostream>

#include "cli_util.h"
#include "commands.h"

int main(int argc, char** argv) {
  using namespace offhost::cli;
  CLI::App app{"offhost — off-host backup proxy for virtual machines"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("offhost 0.1.0"));
  RunFn run;
  AddDatastoreCommand(app, &run);
  AddBackupCommand(app, &run);
  AddSnapshotsCommand(app, &run);
  AddRestoreCommand(app, &run);
  AddVerifyCommand(app, &run);
  AddFilesCommands(app, &run);
  AddMountCommand(app, &run);
  AddFindCommands(app, &run);
  AddDiscoverCommand(app, &run);
  AddJobsCommand(app, &run);
  AddInventoryCommands(app, &run);
  AddPruneCommand(app, &run);
  AddExportCommand(app, &run);
  AddScheduleCommand(app, &run);
  AddGcCommand(app, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  return run ? run() : kExitUsage;
}
