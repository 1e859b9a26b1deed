// The Sleuth Kit over a BlockDevice: an external TSK image whose reads go to the device, and
// RAII owners for the TSK handles. Used by partition-table discovery and by the TSK reader.
#pragma once

#include <tsk/libtsk.h>

#include <memory>
#include <string>

#include "offhost/common/block_device.h"

namespace offhost::mount::internal {

struct TskImgCloser {
  void operator()(TSK_IMG_INFO* i) const { tsk_img_close(i); }
};
struct TskVsCloser {
  void operator()(TSK_VS_INFO* v) const { tsk_vs_close(v); }
};
struct TskFsCloser {
  void operator()(TSK_FS_INFO* f) const { tsk_fs_close(f); }
};
struct TskFileCloser {
  void operator()(TSK_FS_FILE* f) const { tsk_fs_file_close(f); }
};
struct TskDirCloser {
  void operator()(TSK_FS_DIR* d) const { tsk_fs_dir_close(d); }
};
using TskImg = std::unique_ptr<TSK_IMG_INFO, TskImgCloser>;
using TskVs = std::unique_ptr<TSK_VS_INFO, TskVsCloser>;
using TskFs = std::unique_ptr<TSK_FS_INFO, TskFsCloser>;
using TskFile = std::unique_ptr<TSK_FS_FILE, TskFileCloser>;
using TskDir = std::unique_ptr<TSK_FS_DIR, TskDirCloser>;

// A TSK image of `device` (512-byte sectors), which must outlive it.
Result<TskImg> OpenTskImage(BlockDevice& device, const std::string& name);

// The failure of the last read of `img`'s device that failed since the previous call, and
// clears it: TSK turns a read error into "no such file" or a generic message, so callers
// ask this first (a missing or damaged chunk must be named, not taken for a missing file).
Status TakeReadError(TSK_IMG_INFO* img);

// TSK's last error as text, and clears it (TSK keeps it per thread).
std::string TskError();

}  // namespace offhost::mount::internal
