// Naming a stored snapshot on the command line (VM@SNAPSHOT[:/path]) and opening the guest
// files inside it, read in place from the datastore: shared by `ls`, `restore-file` and `mount`.
#pragma once

#include <memory>
#include <string>

#include "offhost/common/status.h"
#include "offhost/proxy/file_restore.h"
#include "offhost/storage/datastore.h"

namespace offhost::cli {

struct SnapshotPath {
  std::string vm, snapshot;
  std::string path = "/";  // inside the snapshot: "/" (the volumes), "/vda1/etc", ...
};

// Parses "VM@SNAPSHOT" or "VM@SNAPSHOT:/path". Snapshot ids contain ':' (a time), so the path
// starts at the first ":/" after the '@'.
Result<SnapshotPath> ParseSnapshotPath(const std::string& ref);

// The --datastore flag when given, else $OFFHOST_DATASTORE; InvalidArgument when neither is.
Result<std::string> DatastoreDir(const std::string& flag);

// A datastore opened read-only, one of its snapshots and the guest files inside it.
struct OpenedSnapshot {
  std::unique_ptr<storage::Datastore> ds;
  storage::SnapshotRecord snap;
  std::unique_ptr<proxy::SnapshotFiles> files;  // reads through ds; declared last, destroyed first
};

// Opens the snapshot `ref` names in the datastore `dir` (see DatastoreDir); "latest" is
// resolved, and ref->snapshot becomes the snapshot's id.
Result<OpenedSnapshot> OpenSnapshotFiles(const std::string& dir, SnapshotPath* ref);

}  // namespace offhost::cli
