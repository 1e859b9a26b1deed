// iSCSI login options shared by `offhost backup --driver iscsi` and `offhost discover`.
// Secrets are read from files or the environment, never taken on the command line, so they
// do not show in process listings or shell history.
#pragma once

#include <CLI/CLI.hpp>
#include <map>
#include <string>

#include "offhost/common/status.h"

namespace offhost::cli {

struct IscsiCliOptions {
  std::string initiator_name;
  std::string chap_secret_file;         // else $OFFHOST_CHAP_SECRET, else the URI's password
  std::string target_chap_user;         // mutual CHAP
  std::string target_chap_secret_file;  // else $OFFHOST_TARGET_CHAP_SECRET
};

void AddIscsiOptions(CLI::App* cmd, IscsiCliOptions* o);

// The driver settings the options mean ("chap-secret", "initiator-name", ...; see
// snapshot_drivers::IscsiCredentialsFromSettings), with the secrets read.
Result<std::map<std::string, std::string>> IscsiSettings(const IscsiCliOptions& o);

}  // namespace offhost::cli
