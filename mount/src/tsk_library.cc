// The Sleuth Kit, loaded when it is first needed rather than when a program starts.
//
// libtsk brings in every disk-image format it knows (libewf, libvmdk, libvhdi, afflib and,
// through afflib, curl with its TLS, LDAP and Kerberos libraries): loading all of them took
// ~4 ms of the ~16 ms `offhost` needed to reach main(), on every command, also those that never
// look inside a file system (a VM backup looks only at its end, to catalog). So offhost does not
// link libtsk: the libtsk functions it calls are defined here, each resolving the real one on
// first use (offhost/common/lazy_library.h), and PreloadFileSystemLibraries() loads the library
// on a thread of its own while the caller waits for something else (a hypervisor taking its
// view).
//
// Each definition must match libtsk's declaration (<tsk/libtsk.h>, included here): a C function
// cannot be overloaded, so a mismatch does not compile. A libtsk function offhost starts to
// call needs a definition here; without one the link fails, naming it.
#include <tsk/libtsk.h>

#include "offhost/common/lazy_library.h"
#include "offhost/mount/guest_files.h"

#ifndef OFFHOST_TSK_SONAME
#error "OFFHOST_TSK_SONAME must name the libtsk to load (mount/CMakeLists.txt sets it)"
#endif

namespace offhost::mount {
namespace {
LazyLibrary libtsk(OFFHOST_TSK_SONAME, "The Sleuth Kit, which reads guest file systems",
                   "libtsk19");
}  // namespace

void PreloadFileSystemLibraries() { libtsk.Preload(); }

}  // namespace offhost::mount

#define OFFHOST_TSK(name) OFFHOST_LAZY_CALL(offhost::mount::libtsk, name)

extern "C" {

const char* tsk_error_get() { OFFHOST_TSK(tsk_error_get)(); }
void tsk_error_reset() { OFFHOST_TSK(tsk_error_reset)(); }

TSK_IMG_INFO* tsk_img_open_external(void* ext_img_info, TSK_OFF_T size, unsigned int sector_size,
                                    ssize_t (*read)(TSK_IMG_INFO*, TSK_OFF_T, char*, size_t),
                                    void (*close)(TSK_IMG_INFO*),
                                    void (*imgstat)(TSK_IMG_INFO*, FILE*)) {
  OFFHOST_TSK(tsk_img_open_external)(ext_img_info, size, sector_size, read, close, imgstat);
}
void tsk_img_close(TSK_IMG_INFO* img) { OFFHOST_TSK(tsk_img_close)(img); }

TSK_VS_INFO* tsk_vs_open(TSK_IMG_INFO* img, TSK_DADDR_T offset, TSK_VS_TYPE_ENUM type) {
  OFFHOST_TSK(tsk_vs_open)(img, offset, type);
}
void tsk_vs_close(TSK_VS_INFO* vs) { OFFHOST_TSK(tsk_vs_close)(vs); }
const TSK_VS_PART_INFO* tsk_vs_part_get(const TSK_VS_INFO* vs, TSK_PNUM_T idx) {
  OFFHOST_TSK(tsk_vs_part_get)(vs, idx);
}

TSK_FS_INFO* tsk_fs_open_img(TSK_IMG_INFO* img, TSK_OFF_T offset, TSK_FS_TYPE_ENUM type) {
  OFFHOST_TSK(tsk_fs_open_img)(img, offset, type);
}
void tsk_fs_close(TSK_FS_INFO* fs) { OFFHOST_TSK(tsk_fs_close)(fs); }
const char* tsk_fs_type_toname(TSK_FS_TYPE_ENUM type) { OFFHOST_TSK(tsk_fs_type_toname)(type); }

TSK_FS_DIR* tsk_fs_dir_open_meta(TSK_FS_INFO* fs, TSK_INUM_T addr) {
  OFFHOST_TSK(tsk_fs_dir_open_meta)(fs, addr);
}
void tsk_fs_dir_close(TSK_FS_DIR* dir) { OFFHOST_TSK(tsk_fs_dir_close)(dir); }
size_t tsk_fs_dir_getsize(const TSK_FS_DIR* dir) { OFFHOST_TSK(tsk_fs_dir_getsize)(dir); }
TSK_FS_FILE* tsk_fs_dir_get(const TSK_FS_DIR* dir, size_t idx) {
  OFFHOST_TSK(tsk_fs_dir_get)(dir, idx);
}

TSK_FS_FILE* tsk_fs_file_open(TSK_FS_INFO* fs, TSK_FS_FILE* file, const char* path) {
  OFFHOST_TSK(tsk_fs_file_open)(fs, file, path);
}
TSK_FS_FILE* tsk_fs_file_open_meta(TSK_FS_INFO* fs, TSK_FS_FILE* file, TSK_INUM_T addr) {
  OFFHOST_TSK(tsk_fs_file_open_meta)(fs, file, addr);
}
void tsk_fs_file_close(TSK_FS_FILE* file) { OFFHOST_TSK(tsk_fs_file_close)(file); }
const TSK_FS_ATTR* tsk_fs_file_attr_get(TSK_FS_FILE* file) {
  OFFHOST_TSK(tsk_fs_file_attr_get)(file);
}
ssize_t tsk_fs_file_read(TSK_FS_FILE* file, TSK_OFF_T offset, char* buf, size_t len,
                         TSK_FS_FILE_READ_FLAG_ENUM flags) {
  OFFHOST_TSK(tsk_fs_file_read)(file, offset, buf, len, flags);
}

}  // extern "C"
