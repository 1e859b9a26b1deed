#include "iscsi_options.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace offhost::cli {
namespace {

// The secret from `file` (first line, without its newline), else from the environment
// variable `env`; empty when neither is given.
Result<std::string> ReadSecret(const std::string& file, const char* env, const char* option) {
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) {
      return Status::NotFound(std::string("cannot read the secret file given to ") + option + ": " +
                              file + "; check the path and its permissions");
    }
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) {
      return Status::InvalidArgument(std::string("the secret file given to ") + option + " (" +
                                     file + ") is empty");
    }
    return line;
  }
  const char* v = std::getenv(env);
  return std::string(v ? v : "");
}

}  // namespace

void AddIscsiOptions(CLI::App* cmd, IscsiCliOptions* o) {
  cmd->add_option("--initiator-name", o->initiator_name,
                  "iscsi: initiator IQN to log in with when /etc/iscsi/initiatorname.iscsi is "
                  "absent (default iqn.2026-11.org.offhost:HOSTNAME)");
  cmd->add_option("--chap-secret-file", o->chap_secret_file,
                  "iscsi: file holding the CHAP secret for the URI's user (or set "
                  "OFFHOST_CHAP_SECRET)");
  cmd->add_option("--target-chap-user", o->target_chap_user,
                  "iscsi: mutual CHAP, the user the target answers as");
  cmd->add_option("--target-chap-secret-file", o->target_chap_secret_file,
                  "iscsi: mutual CHAP, file holding the target's secret (or set "
                  "OFFHOST_TARGET_CHAP_SECRET)");
}

Result<std::map<std::string, std::string>> IscsiSettings(const IscsiCliOptions& o) {
  std::map<std::string, std::string> s;
  if (!o.initiator_name.empty()) s["initiator-name"] = o.initiator_name;
  // Where open-iscsi's name is read from; tests and unusual installs point elsewhere.
  if (const char* f = std::getenv("OFFHOST_INITIATOR_NAME_FILE")) s["initiator-name-file"] = f;
  OFFHOST_ASSIGN_OR_RETURN(std::string secret, ReadSecret(o.chap_secret_file, "OFFHOST_CHAP_SECRET",
                                                          "--chap-secret-file"));
  if (!secret.empty()) s["chap-secret"] = secret;
  OFFHOST_ASSIGN_OR_RETURN(std::string target_secret,
                           ReadSecret(o.target_chap_secret_file, "OFFHOST_TARGET_CHAP_SECRET",
                                      "--target-chap-secret-file"));
  if (o.target_chap_user.empty() != target_secret.empty()) {
    return Status::InvalidArgument(
        "mutual CHAP needs both --target-chap-user and the target's secret "
        "(--target-chap-secret-file or OFFHOST_TARGET_CHAP_SECRET)");
  }
  if (!o.target_chap_user.empty()) {
    s["target-chap-user"] = o.target_chap_user;
    s["target-chap-secret"] = target_secret;
  }
  return s;
}

}  // namespace offhost::cli
