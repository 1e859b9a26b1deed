#include "tsk_image.h"

#include <algorithm>
#include <cstdlib>

namespace offhost::mount::internal {
namespace {

// TSK requires the external image struct to start with TSK_IMG_INFO and be calloc'ed: it
// frees it with free() through ImageClose.
struct ExternalImage {
  TSK_IMG_INFO info;
  BlockDevice* device;
  Status* read_error;  // the device's last failure (a damaged chunk...), for TakeReadError
};

ssize_t ImageRead(TSK_IMG_INFO* img, TSK_OFF_T off, char* buf, size_t len) {
  auto* ext = reinterpret_cast<ExternalImage*>(img);
  uint64_t size = ext->device->size();
  if (off < 0 || static_cast<uint64_t>(off) >= size) return 0;
  len = std::min<uint64_t>(len, size - static_cast<uint64_t>(off));
  ReadRequest req{static_cast<uint64_t>(off), {buf, len}};
  Status st = ext->device->Read({&req, 1});
  if (!st.ok()) {
    if (!ext->read_error) ext->read_error = new Status(st);
    *ext->read_error = st;
    return -1;
  }
  return static_cast<ssize_t>(len);
}
void ImageClose(TSK_IMG_INFO* img) {
  delete reinterpret_cast<ExternalImage*>(img)->read_error;
  std::free(img);
}
void ImageStat(TSK_IMG_INFO*, FILE*) {}

}  // namespace

std::string TskError() {
  const char* e = tsk_error_get();
  std::string s = e ? e : "unknown error";
  tsk_error_reset();
  return s;
}

Status TakeReadError(TSK_IMG_INFO* img) {
  auto* ext = reinterpret_cast<ExternalImage*>(img);
  if (!ext->read_error) return Status::OK();
  Status st = *ext->read_error;
  *ext->read_error = Status::OK();
  return st;
}

Result<TskImg> OpenTskImage(BlockDevice& device, const std::string& name) {
  auto* ext = static_cast<ExternalImage*>(std::calloc(1, sizeof(ExternalImage)));
  if (!ext) return Status::IOError("open " + name + " for reading: out of memory");
  ext->device = &device;
  TSK_IMG_INFO* img = tsk_img_open_external(ext, static_cast<TSK_OFF_T>(device.size()), 512,
                                            ImageRead, ImageClose, ImageStat);
  if (!img) {
    std::free(ext);
    return Status::IOError("open " + name + " for reading: " + TskError());
  }
  return TskImg(img);
}

}  // namespace offhost::mount::internal
