// Files inside a stored backup: browse and restore single files or folders without staging
// or booting the VM. Only the chunks holding what is read are fetched.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "offhost/mount/guest_files.h"
#include "offhost/storage/datastore.h"

namespace offhost::proxy {

class SnapshotFiles {
 public:
  static Result<std::unique_ptr<SnapshotFiles>> Open(storage::Datastore& ds,
                                                     const storage::SnapshotRecord& snap);
  mount::GuestFiles& files() { return *files_; }

 private:
  std::vector<std::unique_ptr<BlockDevice>> disks_;
  std::unique_ptr<mount::GuestFiles> files_;
};

struct FileRestoreOptions {
  bool overwrite = false;  // replace files that exist in the target
  // Keep the guest's setuid/setgid bits. The operator restoring on their own proxy may want
  // them; a daemon restoring for a remote caller must not plant setuid files (owned by the
  // guest's root) on the proxy.
  bool keep_setid = true;
};

struct FileRestoreResult {
  uint64_t files = 0, directories = 0, symlinks = 0, bytes = 0;
  // Of `files`: names restored as hard links to a file restored before, as the guest had them.
  uint64_t hard_links = 0;
  std::vector<std::string> skipped;  // guest names that could not be restored safely, with why
};

// Restores `path` (a file, symlink or folder, recursively) into the existing directory
// `target_dir`: content, mode, owner (when running as root) and times; sparse files stay
// sparse; symlinks are restored as links and never followed; files the guest had under
// several names in what is restored are restored once and linked. Nothing is written outside
// target_dir, whatever the guest's names are.
Result<FileRestoreResult> RestoreFiles(mount::GuestFiles& files, const std::string& path,
                                       const std::string& target_dir,
                                       const FileRestoreOptions& options);

}  // namespace offhost::proxy
