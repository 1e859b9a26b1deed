#include "offhost/proxy/iscsi_discovery.h"

namespace offhost::proxy {
namespace {

namespace sd = snapshot_drivers;

// "alice@" when the portal URI names a CHAP user: the LUNs are opened as the same user.
std::string UserPart(const std::string& portal) {
  const std::string scheme = "iscsi://";
  if (!portal.starts_with(scheme)) return "";
  auto at = portal.find('@', scheme.size());
  auto slash = portal.find('/', scheme.size());
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) return "";
  return portal.substr(scheme.size(), at + 1 - scheme.size());
}

}  // namespace

// Reads the LVM2 labels of every disk LUN (a few KiB each); a LUN that cannot be read is
// skipped with a warning, the discovery still lists it.
Result<PortalDiscovery> DiscoverIscsiPortal(const std::string& portal,
                                            const sd::IscsiCredentials& credentials) {
  PortalDiscovery out;
  OFFHOST_ASSIGN_OR_RETURN(out.targets, sd::DiscoverIscsi(portal, credentials));
  std::string user = UserPart(portal);
  for (const auto& t : out.targets) {
    for (const auto& l : t.luns) {
      if (l.device_type != "disk" || !l.uri.starts_with("iscsi://")) continue;
      sd::IscsiOpenOptions options;
      options.credentials = credentials;
      auto lun = sd::OpenIscsi("iscsi://" + user + l.uri.substr(8), options);
      if (!lun.ok()) {
        out.warnings.push_back(lun.status().message());
        continue;
      }
      auto lvs = mount::ListLogicalVolumes(**lun);
      if (!lvs.ok()) {
        out.warnings.push_back("looking for LVM on " + l.uri + ": " + lvs.status().message());
        continue;
      }
      if (!lvs->empty()) out.volumes[l.uri] = std::move(*lvs);
    }
  }
  return out;
}

std::string LogicalVolumeUri(const std::string& lun_uri, const mount::LogicalVolumeInfo& v) {
  return lun_uri + "#" + v.vg + "/" + v.lv;
}

}  // namespace offhost::proxy
