#include "bfio_device.h"

#include <cstdio>
#include <memory>
#include <mutex>

namespace offhost::mount::internal {
namespace {

// What libbfio calls our io_handle. libbfio owns it (MANAGED) and frees it with FreeIo; a
// clone (libbfio may clone handles for pools) shares the error slot with its original.
struct IoState {
  BlockDevice* device = nullptr;
  int64_t offset = 0;
  bool open = false;
  std::shared_ptr<std::pair<std::mutex, std::string>> last_error;
};

IoState* State(intptr_t* io) { return reinterpret_cast<IoState*>(io); }

int FreeIo(intptr_t** io, libbfio_error_t**) {
  if (io && *io) {
    delete State(*io);
    *io = nullptr;
  }
  return 1;
}

int CloneIo(intptr_t** dst, intptr_t* src, libbfio_error_t**) {
  if (!dst || !src) return -1;
  auto* copy = new IoState(*State(src));
  copy->open = false;
  copy->offset = 0;
  *dst = reinterpret_cast<intptr_t*>(copy);
  return 1;
}

int OpenIo(intptr_t* io, int access_flags, libbfio_error_t**) {
  if (access_flags & LIBBFIO_ACCESS_FLAG_WRITE) return -1;  // guest disks are read-only
  State(io)->open = true;
  State(io)->offset = 0;
  return 1;
}

int CloseIo(intptr_t* io, libbfio_error_t**) {
  State(io)->open = false;
  return 0;
}

ssize_t ReadIo(intptr_t* io, uint8_t* buffer, size_t size, libbfio_error_t**) {
  IoState* s = State(io);
  uint64_t dev_size = s->device->size();
  if (s->offset < 0) return -1;
  uint64_t off = static_cast<uint64_t>(s->offset);
  if (off >= dev_size || size == 0) return 0;
  size = static_cast<size_t>(std::min<uint64_t>(size, dev_size - off));
  ReadRequest req{off, {reinterpret_cast<char*>(buffer), size}};
  Status st = s->device->Read({&req, 1});
  if (!st.ok()) {
    std::lock_guard<std::mutex> lock(s->last_error->first);
    s->last_error->second = st.message();
    return -1;
  }
  s->offset += static_cast<int64_t>(size);
  return static_cast<ssize_t>(size);
}

ssize_t WriteIo(intptr_t*, const uint8_t*, size_t, libbfio_error_t**) { return -1; }

off64_t SeekIo(intptr_t* io, off64_t offset, int whence, libbfio_error_t**) {
  IoState* s = State(io);
  int64_t base = whence == SEEK_SET   ? 0
                 : whence == SEEK_CUR ? s->offset
                 : whence == SEEK_END ? static_cast<int64_t>(s->device->size())
                                      : -1;
  if (base < 0 || base + offset < 0) return -1;
  s->offset = base + offset;
  return s->offset;
}

int ExistsIo(intptr_t*, libbfio_error_t**) { return 1; }
int IsOpenIo(intptr_t* io, libbfio_error_t**) { return State(io)->open ? 1 : 0; }
int GetSizeIo(intptr_t* io, size64_t* size, libbfio_error_t**) {
  *size = State(io)->device->size();
  return 1;
}

std::string BfioError(libbfio_error_t* error) {
  char buf[512] = {};
  if (error) libbfio_error_sprint(error, buf, sizeof buf);
  libbfio_error_free(&error);
  return buf[0] ? buf : "unknown error";
}

}  // namespace

Result<std::unique_ptr<BfioHandle>> BfioHandle::Open(BlockDevice& device) {
  auto* state = new IoState;
  state->device = &device;
  state->last_error = std::make_shared<std::pair<std::mutex, std::string>>();
  libbfio_handle_t* handle = nullptr;
  libbfio_error_t* error = nullptr;
  if (libbfio_handle_initialize(&handle, reinterpret_cast<intptr_t*>(state), FreeIo, CloneIo,
                                OpenIo, CloseIo, ReadIo, WriteIo, SeekIo, ExistsIo, IsOpenIo,
                                GetSizeIo, LIBBFIO_FLAG_IO_HANDLE_MANAGED, &error) != 1) {
    delete state;
    return Status::IOError("read " + device.description() + ": libbfio: " + BfioError(error));
  }
  return std::unique_ptr<BfioHandle>(new BfioHandle(handle));
}

BfioHandle::~BfioHandle() {
  libbfio_error_t* error = nullptr;
  libbfio_handle_free(&handle_, &error);  // frees the IoState through FreeIo
  if (error) libbfio_error_free(&error);
}

std::string BfioHandle::last_error() const {
  intptr_t* io = nullptr;
  libbfio_error_t* error = nullptr;
  if (libbfio_handle_get_io_handle(handle_, &io, &error) != 1 || !io) {
    if (error) libbfio_error_free(&error);
    return "";
  }
  IoState* s = State(io);
  std::lock_guard<std::mutex> lock(s->last_error->first);
  return s->last_error->second;
}

}  // namespace offhost::mount::internal
