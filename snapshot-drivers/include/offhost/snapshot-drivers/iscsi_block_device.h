// iSCSI transport (Direct SAN): a BlockDevice over libiscsi for a SAN LUN or the array's
// snapshot of it, iscsi://[USER[%PASSWORD]@]PORTAL[:PORT]/TARGET-IQN/LUN. Reads keep several
// SCSI READ commands in flight, sized to the LUN's Block Limits VPD page; GET LBA STATUS tells
// unmapped ranges, which are never read. A source LUN is only ever read.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "offhost/common/block_device.h"

namespace offhost::snapshot_drivers {

// Who the proxy is to the SAN, and the CHAP secrets. Secrets come from files or the
// environment (never the command line); a password inside the URI is accepted but masked
// wherever the URI is shown.
struct IscsiCredentials {
  // The initiator name to log in with: the one open-iscsi keeps in initiator_name_file when
  // that file exists (the name SAN administrators already put in their LUN masking), else
  // initiator_name, else DefaultInitiatorName().
  std::string initiator_name;
  std::string initiator_name_file = "/etc/iscsi/initiatorname.iscsi";
  // CHAP: the user may also come from the URI; the secret from here or the URI.
  std::string chap_user, chap_secret;
  // Mutual CHAP: how the target proves itself to us (both set, or neither).
  std::string target_chap_user, target_chap_secret;
};

// From driver settings (what the CLI and the daemon's config fill in): "initiator-name",
// "initiator-name-file", "chap-user", "chap-secret", "target-chap-user", "target-chap-secret".
IscsiCredentials IscsiCredentialsFromSettings(const std::map<std::string, std::string>& settings);

struct IscsiOpenOptions {
  IscsiCredentials credentials;
  int max_in_flight = 16;           // READ commands outstanding at once
  uint32_t max_request = 4u << 20;  // bytes; lowered to the LUN's maximum transfer length
  int timeout_seconds = 30;         // per command and for the login
};

// "iqn.2026-11.org.offhost:<hostname>".
std::string DefaultInitiatorName();
// The initiator name the options resolve to (see IscsiCredentials); an error when the
// initiator name file exists but names none.
Result<std::string> ResolveInitiatorName(const IscsiCredentials& credentials);

bool IsIscsiUri(const std::string& uri);
// The URI with any password (USER%PASSWORD@ or USER:PASSWORD@) replaced by "***".
std::string MaskIscsiUri(const std::string& uri);
// The URI without its USER[%PASSWORD]@ part: the LUN's identity whoever logs in.
std::string IscsiUriWithoutUser(const std::string& uri);

// Opens a LUN read-only; a "#VG/LV" fragment is ignored. Errors name the masked URI and what
// to check: Unavailable when the portal cannot be reached, FailedPrecondition when login or
// CHAP is refused (Status has no PermissionDenied), NotFound for an unknown target or LUN,
// NotSupported for a LUN that is not a disk (a tape, a changer).
Result<std::unique_ptr<BlockDevice>> OpenIscsi(const std::string& uri,
                                               const IscsiOpenOptions& options = {});

// SendTargets discovery of a portal (iscsi://PORTAL[:PORT]), then for each target its LUNs.
struct IscsiLun {
  int lun = 0;
  std::string uri;          // iscsi://PORTAL/TARGET/LUN, without credentials
  std::string device_type;  // "disk", "tape", "changer", "controller", "other (0xNN)"
  std::string vendor, product;
  uint64_t size = 0;        // bytes (disks only)
  uint32_t block_size = 0;  // bytes (disks only)
  bool thin = false;        // logical block provisioning: GET LBA STATUS is answered
};
struct IscsiTarget {
  std::string name;                  // the IQN
  std::vector<std::string> portals;  // as the target reports them ("127.0.0.1:3260,1")
  std::vector<IscsiLun> luns;
  std::string error;  // why its LUNs could not be listed (login refused...)
};
Result<std::vector<IscsiTarget>> DiscoverIscsi(const std::string& portal_uri,
                                               const IscsiCredentials& credentials);

}  // namespace offhost::snapshot_drivers
