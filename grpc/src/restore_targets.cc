#include "restore_targets.h"

#include <sys/stat.h>

#include <filesystem>

namespace offhost::grpcapi {
namespace {

namespace fs = std::filesystem;

std::string Listed(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

Status NotAllowed(const std::vector<std::string>& roots, const std::string& path) {
  if (roots.empty()) {
    return Status(StatusCode::kNotSupported,
                  "restores to the proxy's file system are not enabled: add a folder for them "
                  "to [server] restore_roots in offhostd's configuration");
  }
  return Status(StatusCode::kNotSupported, path +
                                               " is outside the restore folders offhostd allows (" +
                                               Listed(roots) + "; [server] restore_roots)");
}

// `resolved` (canonical) is `root` or below it. Roots are resolved here rather than at load,
// so a root mounted after the daemon started is judged by what it is now.
bool Inside(const fs::path& resolved, const std::string& root) {
  std::error_code ec;
  fs::path base = fs::canonical(root, ec);
  if (ec) return false;
  auto [r, p] = std::mismatch(base.begin(), base.end(), resolved.begin(), resolved.end());
  return r == base.end();
}

bool InsideAny(const fs::path& resolved, const std::vector<std::string>& roots) {
  for (const std::string& root : roots) {
    if (Inside(resolved, root)) return true;
  }
  return false;
}

bool IsSymlink(const fs::path& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

}  // namespace

Result<std::string> AllowedFileTarget(const std::vector<std::string>& roots,
                                      const std::string& path) {
  fs::path p(path);
  fs::path name = p.filename();
  if (!p.is_absolute() || name.empty() || name == "." || name == "..") {
    return Status::InvalidArgument("the target \"" + path +
                                   "\" must be an absolute path naming a file");
  }
  std::error_code ec;
  fs::path folder = fs::canonical(p.parent_path(), ec);
  if (ec) return NotAllowed(roots, path);  // said the same way, so it reveals nothing
  fs::path resolved = folder / name;
  // An existing target (a symlink too) is judged by what it points at: that is what is written.
  if (fs::exists(fs::symlink_status(resolved))) resolved = fs::canonical(resolved, ec);
  if (ec || !InsideAny(resolved, roots)) return NotAllowed(roots, path);
  if (IsSymlink(resolved.string() + ".partial")) return NotAllowed(roots, path + ".partial");
  return resolved.string();
}

Result<std::string> AllowedDirectoryTarget(const std::vector<std::string>& roots,
                                           const std::string& path) {
  std::error_code ec;
  fs::path resolved = fs::canonical(path, ec);
  if (!fs::path(path).is_absolute() || ec || !InsideAny(resolved, roots)) {
    return NotAllowed(roots, path);
  }
  if (!fs::is_directory(resolved)) {
    return Status::FailedPrecondition(path + " is not a folder; give an existing folder");
  }
  return resolved.string();
}

Status AllowedNbdTarget(const std::vector<std::string>& prefixes, const std::string& uri) {
  // An entry allows itself, or (ending in '/') the exports of that server; never a longer
  // host name ("nbd://10.0.0.9" is not "nbd://10.0.0.99") or extra query parameters.
  bool has_query = uri.find('?') != std::string::npos;
  for (const std::string& prefix : prefixes) {
    if (uri == prefix) return Status::OK();
    if (prefix.ends_with("/") && uri.starts_with(prefix) && !has_query) return Status::OK();
  }
  return Status(StatusCode::kNotSupported,
                "the NBD target is not one offhostd may write: add its URI prefix to [server] "
                "restore_nbd_targets in offhostd's configuration");
}

}  // namespace offhost::grpcapi
