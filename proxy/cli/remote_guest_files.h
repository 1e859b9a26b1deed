// The guest files of a snapshot held by offhostd, as mount::GuestFiles, for `offhost mount`
// against the daemon: Stat asks CatalogService.GetFileInfo, List asks ListFiles (every page),
// ReadFile streams the file with RestoreService.DownloadFiles (raw bytes, from `offset` 0),
// so the FUSE tree and its read cache work as on a local datastore. Every call needs a token
// with the read-only role at least; the daemon writes each download to its audit log.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "daemon_client.h"
#include "offhost/mount/guest_files.h"

namespace offhost::cli {

class RemoteGuestFiles final : public mount::GuestFiles {
 public:
  // `snapshot`: the resource name ("datastores/{ds}/vms/{vm}/snapshots/{id}", not "latest",
  // so every call sees the same snapshot). Checks that the caller may read file contents
  // (the operator role) and lists the volumes once.
  static Result<std::unique_ptr<RemoteGuestFiles>> Open(const DaemonClient& client,
                                                        std::string snapshot);

  const std::vector<mount::VolumeInfo>& volumes() const override { return volumes_; }
  Result<mount::FileInfo> Stat(const std::string& path) override;
  Result<std::vector<mount::FileInfo>> List(const std::string& path) override;
  Status ReadFile(const std::string& path,
                  const std::function<Status(uint64_t, std::span<const char>)>& sink) override;
  // Where the data lies on the disks is the daemon's business: NotSupported.
  Result<std::vector<mount::FileExtent>> Extents(const std::string& path) override;

 private:
  RemoteGuestFiles(const DaemonClient& client, std::string snapshot)
      : client_(client), snapshot_(std::move(snapshot)) {}

  const DaemonClient& client_;
  std::string snapshot_;
  std::vector<mount::VolumeInfo> volumes_;
};

}  // namespace offhost::cli
