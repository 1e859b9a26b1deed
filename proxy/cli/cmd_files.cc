// offhost ls [--datastore DIR] VM@SNAPSHOT[:/path] [--json]
// offhost restore-file [--datastore DIR] VM@SNAPSHOT:/path --to DIR [--overwrite]
// Without a datastore directory both ask offhostd (--server): ls with ListFiles, restore-file
// with DownloadFiles (daemon_download.h).
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "daemon_client.h"
#include "daemon_convert.h"
#include "daemon_download.h"
#include "offhost/proxy/file_restore.h"
#include "offhost/v1/catalog.grpc.pb.h"
#include "open_snapshot.h"

namespace offhost::cli {
namespace {

struct FilesOptions {
  std::string datastore;
  std::string ref;  // VM@SNAPSHOT[:/path]
  std::string to;
  bool overwrite = false;
  bool json = false;
  DaemonOptions daemon;
};

// What `ls` shows: the entries, or at "/" the volumes (name, length, file system or why not).
struct Listing {
  std::vector<mount::FileInfo> entries;
  struct Volume {
    std::string name, fs;
    uint64_t length = 0;
  };
  std::vector<Volume> volumes;
};

std::string ModeString(const mount::FileInfo& f) {
  std::string s = f.type == mount::FileType::kDirectory ? "d"
                  : f.type == mount::FileType::kSymlink ? "l"
                  : f.type == mount::FileType::kRegular ? "-"
                                                        : "?";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (f.mode & (0400u >> i)) ? rwx[i] : '-';
  return s;
}

Result<OpenedSnapshot> OpenFiles(const FilesOptions& o, SnapshotPath* ref) {
  OFFHOST_ASSIGN_OR_RETURN(*ref, ParseSnapshotPath(o.ref));
  OFFHOST_ASSIGN_OR_RETURN(std::string dir, DatastoreDir(o.datastore));
  return OpenSnapshotFiles(dir, ref);
}

// Local mode unless --server is given: $OFFHOST_DATASTORE counts as --datastore here.
Result<bool> FilesUseDaemon(const FilesOptions& o) {
  const char* env = std::getenv("OFFHOST_DATASTORE");
  std::string dir = !o.datastore.empty() || !o.daemon.server.empty() || !env ? o.datastore : env;
  return UseDaemon(o.daemon, dir);
}

int PrintListing(const Listing& l, const SnapshotPath& ref, bool json) {
  if (json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& e : l.entries) {
      j.push_back({{"name", e.name},
                   {"type", ModeString(e).substr(0, 1)},
                   {"size", e.size},
                   {"mode", e.mode},
                   {"uid", e.uid},
                   {"gid", e.gid},
                   {"mtime", e.mtime},
                   {"link_target", e.link_target}});
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (ref.path == "/") {
    for (const auto& v : l.volumes) {
      std::cout << Printable(v.name) << "\t" << HumanBytes(v.length) << "\t" << Printable(v.fs)
                << "\n";
    }
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : l.entries) {
    rows.push_back(
        {ModeString(e), std::to_string(e.uid), std::to_string(e.gid), std::to_string(e.size),
         FormatTime(e.mtime),
         Printable(e.name) + (e.link_target.empty() ? "" : " -> " + Printable(e.link_target))});
  }
  PrintTable({"MODE", "UID", "GID", "SIZE", "MODIFIED", "NAME"}, rows, {1, 2, 3});
  return kExitOk;
}

int LsLocal(const FilesOptions& o) {
  SnapshotPath ref;
  auto opened = OpenFiles(o, &ref);
  if (!opened.ok()) return ReportError(opened.status());
  auto& g = opened->files->files();
  auto info = g.Stat(ref.path);
  if (!info.ok()) return ReportError(info.status());
  Listing l;
  if (info->type == mount::FileType::kDirectory) {
    auto list = g.List(ref.path);
    if (!list.ok()) return ReportError(list.status());
    l.entries = std::move(*list);
  } else {
    l.entries.push_back(*info);
  }
  for (const auto& v : g.volumes()) {
    l.volumes.push_back({v.name, v.fs_type.empty() ? v.not_indexed : v.fs_type, v.length});
  }
  return PrintListing(l, ref, o.json);
}

// ListFiles answers a file with itself and a folder with its entries, as the local `ls`.
int LsDaemon(const FilesOptions& o) {
  auto ref = ParseSnapshotPath(o.ref);
  if (!ref.ok()) return ReportError(ref.status());
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  int exit = kExitOk;
  auto snapshot = FindSnapshotResource(**client, ref->vm, ref->snapshot, &exit);
  if (!snapshot.ok()) return exit;
  auto stub = v1::CatalogService::NewStub((*client)->channel());
  v1::ListFilesRequest req;
  req.set_snapshot(*snapshot);
  req.set_path(ref->path);
  req.set_page_size(1000);
  Listing l;
  do {
    v1::ListFilesResponse resp;
    auto ctx = (*client)->Context();
    grpc::Status st = stub->ListFiles(ctx.get(), req, &resp);
    if (!st.ok()) return ReportRpcError(st, *ctx, **client);
    for (const auto& f : resp.entries()) {
      if (f.type() == v1::FILE_TYPE_VOLUME) {
        const auto& v = f.volume();
        l.volumes.push_back({f.name(), v.fs_type().empty() ? v.not_indexed_reason() : v.fs_type(),
                             v.length_bytes()});
      }
      l.entries.push_back(ToGuestFile(f));
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return PrintListing(l, *ref, o.json);
}

int RunLs(const FilesOptions& o) {
  auto daemon = FilesUseDaemon(o);
  if (!daemon.ok()) return ReportError(daemon.status());
  return *daemon ? LsDaemon(o) : LsLocal(o);
}

int RestoreFileLocal(const FilesOptions& o) {
  SnapshotPath ref;
  auto opened = OpenFiles(o, &ref);
  if (!opened.ok()) return ReportError(opened.status());
  proxy::FileRestoreOptions options;
  options.overwrite = o.overwrite;
  auto r = proxy::RestoreFiles(opened->files->files(), ref.path, o.to, options);
  if (!r.ok()) return ReportError(r.status());
  for (const auto& s : r->skipped)
    std::cerr << "offhost: skipped (unsafe or unsupported): " << Printable(s) << "\n";
  std::cout << "restored " << ref.vm << "@" << ref.snapshot << ":" << Printable(ref.path) << " to "
            << o.to << ": " << r->files << " files, " << r->directories << " folders, "
            << r->symlinks << " symlinks, " << HumanBytes(r->bytes);
  if (r->hard_links > 0) std::cout << " (" << r->hard_links << " files restored as hard links)";
  std::cout << "\n";
  return kExitOk;
}

int RestoreFileDaemon(const FilesOptions& o) {
  auto ref = ParseSnapshotPath(o.ref);
  if (!ref.ok()) return ReportError(ref.status());
  auto client = DaemonClient::Connect(o.daemon);
  if (!client.ok()) return ReportError(client.status());
  int exit = kExitOk;
  auto snapshot = FindSnapshotResource(**client, ref->vm, ref->snapshot, &exit);
  if (!snapshot.ok()) return exit;
  auto r = DownloadFile(**client, *snapshot, ref->path, o.to, o.overwrite, &exit);
  if (!r.ok()) return exit;
  std::cout << "restored " << ref->vm << "@" << LastPart(*snapshot) << ":" << Printable(ref->path)
            << " to " << o.to << ": 1 files, 0 folders, 0 symlinks, " << HumanBytes(*r) << "\n";
  return kExitOk;
}

int RunRestoreFile(const FilesOptions& o) {
  auto daemon = FilesUseDaemon(o);
  if (!daemon.ok()) return ReportError(daemon.status());
  return *daemon ? RestoreFileDaemon(o) : RestoreFileLocal(o);
}

}  // namespace

void AddFilesCommands(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<FilesOptions>();
  auto* ls = app.add_subcommand("ls", "List files inside a backup, without restoring it");
  ls->add_option("--datastore", o->datastore, "Datastore directory (default $OFFHOST_DATASTORE)");
  AddDaemonOptions(ls, &o->daemon);
  ls->add_option("PATH", o->ref, "VM@SNAPSHOT[:/path], e.g. web01@latest:/vda1/etc")->required();
  ls->add_flag("--json", o->json, "Print as JSON");
  ls->callback([run, o] { *run = [o] { return RunLs(*o); }; });

  auto r = std::make_shared<FilesOptions>();
  auto* rf = app.add_subcommand("restore-file", "Restore a file or folder from a backup");
  rf->add_option("--datastore", r->datastore, "Datastore directory (default $OFFHOST_DATASTORE)");
  AddDaemonOptions(rf, &r->daemon);
  rf->add_option("PATH", r->ref, "VM@SNAPSHOT:/path of a file or folder")->required();
  rf->add_option("--to", r->to, "Existing folder to restore into")->required();
  rf->add_flag("--overwrite", r->overwrite, "Replace files that already exist there");
  rf->callback([run, r] { *run = [r] { return RunRestoreFile(*r); }; });
}

}  // namespace offhost::cli
