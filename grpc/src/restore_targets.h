// Where restores may write on the proxy: only inside the configured restore roots
// ([server] restore_roots), judged on the path with `..` and symlinks resolved, so neither a
// crafted name nor a symlink planted inside a root reaches a file outside it.
#pragma once

#include <string>
#include <vector>

#include "offhost/common/status.h"

namespace offhost::grpcapi {

// offhost::Status has no permission code: a target outside the roots is refused with
// kNotSupported, which the RPCs answer as PERMISSION_DENIED, RESTORE_TARGET_NOT_ALLOWED.
inline bool IsRefusedTarget(const Status& status) {
  return status.code() == StatusCode::kNotSupported;
}

// The resolved path of the disk restore target `path` (a file that may not exist yet; its
// folder must), when it lies inside one of `roots`; a refusal (IsRefusedTarget) otherwise. Also
// refused: a PATH.partial that is a symlink (FileRestoreTarget opens it for writing).
Result<std::string> AllowedFileTarget(const std::vector<std::string>& roots,
                                      const std::string& path);

// The resolved path of the existing folder `path` when it is, or is inside, one of `roots`;
// a refusal outside them, FailedPrecondition when it is not a folder.
Result<std::string> AllowedDirectoryTarget(const std::vector<std::string>& roots,
                                           const std::string& path);

// OK when `uri` starts with one of `prefixes`; a refusal otherwise.
Status AllowedNbdTarget(const std::vector<std::string>& prefixes, const std::string& uri);

}  // namespace offhost::grpcapi
