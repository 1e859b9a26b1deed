#include "open_snapshot.h"

#include <cstdlib>

namespace offhost::cli {

Result<SnapshotPath> ParseSnapshotPath(const std::string& ref) {
  auto at = ref.find('@');
  if (at == std::string::npos || at == 0) {
    return Status::InvalidArgument("'" + ref +
                                   "' is not VM@SNAPSHOT:/path (e.g. web01@latest:/vda1/etc)");
  }
  SnapshotPath r;
  r.vm = ref.substr(0, at);
  auto colon = ref.find(":/", at);
  r.snapshot = ref.substr(at + 1, colon == std::string::npos ? std::string::npos : colon - at - 1);
  r.path = colon == std::string::npos ? "/" : ref.substr(colon + 1);
  if (r.snapshot.empty()) return Status::InvalidArgument("'" + ref + "' names no snapshot");
  return r;
}

Result<std::string> DatastoreDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("OFFHOST_DATASTORE");
  if (env && *env) return std::string(env);
  return Status::InvalidArgument("give the datastore with --datastore DIR (or OFFHOST_DATASTORE)");
}

Result<OpenedSnapshot> OpenSnapshotFiles(const std::string& dir, SnapshotPath* ref) {
  OpenedSnapshot o;
  OFFHOST_ASSIGN_OR_RETURN(o.ds, storage::Datastore::Open(dir, false));
  OFFHOST_ASSIGN_OR_RETURN(o.snap, o.ds->FindSnapshot(ref->vm, ref->snapshot));
  ref->snapshot = o.snap.id;
  OFFHOST_ASSIGN_OR_RETURN(o.files, proxy::SnapshotFiles::Open(*o.ds, o.snap));
  return o;
}

}  // namespace offhost::cli
