// libvirt, loaded when the libvirt driver first needs it rather than when a program starts.
//
// libvirt brings in GLib, GnuTLS, libxml2, libssh, SASL, libnl and more: loading them was
// about 7 ms of every `offhost` command's start, also of those that never talk to libvirt (a
// restore, a listing, a backup through offhostd with --server). So offhost does not link
// libvirt: the libvirt functions the driver calls are defined here, each resolving the real one
// on first use (offhost/common/lazy_library.h).
//
// Each definition must match libvirt's declaration (<libvirt/libvirt.h>, included here): a C
// function cannot be overloaded, so a mismatch does not compile. A libvirt function the driver
// starts to call needs a definition here; without one the link fails, naming it.
#include "libvirt_library.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "offhost/common/lazy_library.h"

#ifndef OFFHOST_LIBVIRT_SONAME
#error \
    "OFFHOST_LIBVIRT_SONAME must name the libvirt to load (snapshot-drivers/CMakeLists.txt sets it)"
#endif

namespace offhost::snapshot_drivers {
namespace {
LazyLibrary libvirt(OFFHOST_LIBVIRT_SONAME, "libvirt, which the libvirt driver talks to hosts with",
                    "libvirt0");
}  // namespace

virConnectAuthPtr LibvirtDefaultAuth() {
  static virConnectAuthPtr* const auth =
      static_cast<virConnectAuthPtr*>(libvirt.Symbol("virConnectAuthPtrDefault"));
  return *auth;
}

}  // namespace offhost::snapshot_drivers

#define OFFHOST_VIR(name) OFFHOST_LAZY_CALL(offhost::snapshot_drivers::libvirt, name)

extern "C" {

virConnectPtr virConnectOpenAuth(const char* name, virConnectAuthPtr auth, unsigned int flags) {
  OFFHOST_VIR(virConnectOpenAuth)(name, auth, flags);
}
int virConnectClose(virConnectPtr conn) { OFFHOST_VIR(virConnectClose)(conn); }
int virConnectIsAlive(virConnectPtr conn) { OFFHOST_VIR(virConnectIsAlive)(conn); }

virDomainPtr virDomainLookupByName(virConnectPtr conn, const char* name) {
  OFFHOST_VIR(virDomainLookupByName)(conn, name);
}
virDomainPtr virDomainLookupByUUIDString(virConnectPtr conn, const char* uuid) {
  OFFHOST_VIR(virDomainLookupByUUIDString)(conn, uuid);
}
int virDomainFree(virDomainPtr domain) { OFFHOST_VIR(virDomainFree)(domain); }
const char* virDomainGetName(virDomainPtr domain) { OFFHOST_VIR(virDomainGetName)(domain); }
int virDomainGetUUIDString(virDomainPtr domain, char* buf) {
  OFFHOST_VIR(virDomainGetUUIDString)(domain, buf);
}
int virDomainIsActive(virDomainPtr dom) { OFFHOST_VIR(virDomainIsActive)(dom); }
int virDomainGetState(virDomainPtr domain, int* state, int* reason, unsigned int flags) {
  OFFHOST_VIR(virDomainGetState)(domain, state, reason, flags);
}
char* virDomainGetXMLDesc(virDomainPtr domain, unsigned int flags) {
  OFFHOST_VIR(virDomainGetXMLDesc)(domain, flags);
}
int virDomainGetBlockInfo(virDomainPtr dom, const char* disk, virDomainBlockInfoPtr info,
                          unsigned int flags) {
  OFFHOST_VIR(virDomainGetBlockInfo)(dom, disk, info, flags);
}

int virDomainBackupBegin(virDomainPtr domain, const char* backupXML, const char* checkpointXML,
                         unsigned int flags) {
  OFFHOST_VIR(virDomainBackupBegin)(domain, backupXML, checkpointXML, flags);
}
char* virDomainBackupGetXMLDesc(virDomainPtr domain, unsigned int flags) {
  OFFHOST_VIR(virDomainBackupGetXMLDesc)(domain, flags);
}
int virDomainAbortJob(virDomainPtr dom) { OFFHOST_VIR(virDomainAbortJob)(dom); }

int virDomainListAllCheckpoints(virDomainPtr domain, virDomainCheckpointPtr** checkpoints,
                                unsigned int flags) {
  OFFHOST_VIR(virDomainListAllCheckpoints)(domain, checkpoints, flags);
}
virDomainCheckpointPtr virDomainCheckpointLookupByName(virDomainPtr domain, const char* name,
                                                       unsigned int flags) {
  OFFHOST_VIR(virDomainCheckpointLookupByName)(domain, name, flags);
}
const char* virDomainCheckpointGetName(virDomainCheckpointPtr checkpoint) {
  OFFHOST_VIR(virDomainCheckpointGetName)(checkpoint);
}
char* virDomainCheckpointGetXMLDesc(virDomainCheckpointPtr checkpoint, unsigned int flags) {
  OFFHOST_VIR(virDomainCheckpointGetXMLDesc)(checkpoint, flags);
}
int virDomainCheckpointDelete(virDomainCheckpointPtr checkpoint, unsigned int flags) {
  OFFHOST_VIR(virDomainCheckpointDelete)(checkpoint, flags);
}
int virDomainCheckpointFree(virDomainCheckpointPtr checkpoint) {
  OFFHOST_VIR(virDomainCheckpointFree)(checkpoint);
}

int virDomainFSFreeze(virDomainPtr dom, const char** mountpoints, unsigned int nmountpoints,
                      unsigned int flags) {
  OFFHOST_VIR(virDomainFSFreeze)(dom, mountpoints, nmountpoints, flags);
}
int virDomainFSThaw(virDomainPtr dom, const char** mountpoints, unsigned int nmountpoints,
                    unsigned int flags) {
  OFFHOST_VIR(virDomainFSThaw)(dom, mountpoints, nmountpoints, flags);
}
int virDomainAgentSetResponseTimeout(virDomainPtr domain, int timeout, unsigned int flags) {
  OFFHOST_VIR(virDomainAgentSetResponseTimeout)(domain, timeout, flags);
}

const char* virGetLastErrorMessage(void) { OFFHOST_VIR(virGetLastErrorMessage)(); }
int virGetLastErrorCode(void) { OFFHOST_VIR(virGetLastErrorCode)(); }
void virSetErrorFunc(void* userData, virErrorFunc handler) {
  OFFHOST_VIR(virSetErrorFunc)(userData, handler);
}

}  // extern "C"
