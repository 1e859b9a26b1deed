#include "offhost/common/status.h"

#include <cstring>

#include "offhost/common/block_device.h"

namespace offhost {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kAlreadyExists: return "already exists";
    case StatusCode::kIOError: return "I/O error";
    case StatusCode::kCorruption: return "corruption";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kNotSupported: return "not supported";
    case StatusCode::kFailedPrecondition: return "failed precondition";
    case StatusCode::kCancelled: return "cancelled";
  }
  return "unknown";
}

Status Status::FromErrno(const std::string& what, int err) {
  return Status::IOError(what + ": " + std::strerror(err));
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

Status BlockDevice::WriteZeroes(uint64_t offset, uint64_t length) {
  static const std::string kZeroes(1 << 20, '\0');
  while (length > 0) {
    size_t n = length < kZeroes.size() ? length : kZeroes.size();
    OFFHOST_RETURN_IF_ERROR(Write(offset, {kZeroes.data(), n}));
    offset += n;
    length -= n;
  }
  return Status::OK();
}

}  // namespace offhost
