// libvirt is loaded when first used (libvirt_library.cc): its one data symbol the driver uses
// is reached through here.
#pragma once

#include <libvirt/libvirt.h>

namespace offhost::snapshot_drivers {

// libvirt's virConnectAuthPtrDefault (console prompts for credentials a URI needs).
virConnectAuthPtr LibvirtDefaultAuth();

}  // namespace offhost::snapshot_drivers
