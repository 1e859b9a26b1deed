// A libbfio handle whose reads go to a BlockDevice: the I/O handle every libyal reader
// (libfsxfs here) opens instead of a file, so it reads a partition, a logical volume or a
// stored backup in place. Built with libbfio_handle_initialize() and our callbacks.
//
// Symbols: Debian's libyal libraries (libvhdi, libewf pulled in by libtsk, ...) carry their
// own exported copies of libbfio_*, and one copy wins for the whole process. That is fine as
// long as every call goes through the same copy, which the dynamic linker guarantees; the
// handle is never touched by two copies because we only call the public API. libbfio.h comes
// first so the readers' headers see LIBxxx_HAVE_BFIO-guarded declarations.
#pragma once

#include <libbfio.h>

#include <memory>
#include <string>

#include "offhost/common/block_device.h"

namespace offhost::mount::internal {

class BfioHandle {
 public:
  // A read-only handle over `device`, which must outlive it.
  static Result<std::unique_ptr<BfioHandle>> Open(BlockDevice& device);
  ~BfioHandle();
  BfioHandle(const BfioHandle&) = delete;
  BfioHandle& operator=(const BfioHandle&) = delete;

  libbfio_handle_t* get() { return handle_; }
  // The BlockDevice error behind the last failed read (libyal messages only say "unable to
  // read"), or empty.
  std::string last_error() const;

 private:
  explicit BfioHandle(libbfio_handle_t* handle) : handle_(handle) {}
  libbfio_handle_t* handle_;
};

}  // namespace offhost::mount::internal
