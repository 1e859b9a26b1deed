// Linux swap (a RHEL install's rhel-swap): no files, but naming it beats "no file system
// recognised". Claims the volume by its signature and refuses it.
#include <cstring>

#include "fs_reader.h"

namespace offhost::mount::internal {
namespace {

Result<std::unique_ptr<FsReader>> OpenSwap(BlockDevice& volume) {
  // The signature ends the first page; pages are 4 KiB on the guests offhost backs up.
  constexpr uint64_t kAt = 4096 - 10;
  if (volume.size() < 4096) return Status::NotFound("not swap");
  char sig[10];
  ReadRequest req{kAt, {sig, sizeof sig}};
  OFFHOST_RETURN_IF_ERROR(volume.Read({&req, 1}));
  if (std::memcmp(sig, "SWAPSPACE2", 10) != 0 && std::memcmp(sig, "SWAP-SPACE", 10) != 0) {
    return Status::NotFound("not swap");
  }
  return Status::NotSupported("Linux swap space, which holds no files");
}

}  // namespace

OFFHOST_REGISTER_FS_READER("swap", 20, OpenSwap);

}  // namespace offhost::mount::internal
