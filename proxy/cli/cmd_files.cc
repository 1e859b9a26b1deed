// offhost ls [--datastore DIR] VM@SNAPSHOT[:/path] [--json]
// offhost restore-file [--datastore DIR] VM@SNAPSHOT:/path --to DIR [--overwrite]
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "offhost/proxy/file_restore.h"

namespace offhost::cli {
namespace {

struct FilesOptions {
  std::string datastore;
  std::string ref;  // VM@SNAPSHOT[:/path]
  std::string to;
  bool overwrite = false;
  bool json = false;
};

struct FileRef {
  std::string vm, snapshot, path;
};

// Snapshot ids contain ':' (a time), so the path starts at the first ":/" after the '@'.
Result<FileRef> ParseFileRef(const std::string& ref) {
  auto at = ref.find('@');
  if (at == std::string::npos || at == 0) {
    return Status::InvalidArgument("'" + ref + "' is not VM@SNAPSHOT:/path (e.g. web01@latest:/vda1/etc)");
  }
  FileRef r;
  r.vm = ref.substr(0, at);
  auto colon = ref.find(":/", at);
  r.snapshot = ref.substr(at + 1, colon == std::string::npos ? std::string::npos : colon - at - 1);
  r.path = colon == std::string::npos ? "/" : ref.substr(colon + 1);
  if (r.snapshot.empty()) return Status::InvalidArgument("'" + ref + "' names no snapshot");
  return r;
}

std::string DatastoreOf(const FilesOptions& o) {
  if (!o.datastore.empty()) return o.datastore;
  const char* env = std::getenv("OFFHOST_DATASTORE");
  return env ? env : "";
}

std::string ModeString(const mount::FileInfo& f) {
  std::string s = f.type == mount::FileType::kDirectory ? "d"
                  : f.type == mount::FileType::kSymlink ? "l"
                  : f.type == mount::FileType::kRegular ? "-"
                                                        : "?";
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (f.mode & (0400u >> i)) ? rwx[i] : '-';
  return s;
}

Result<std::unique_ptr<proxy::SnapshotFiles>> OpenFiles(const FilesOptions& o, FileRef* ref,
                                                        std::unique_ptr<storage::Datastore>* ds) {
  OFFHOST_ASSIGN_OR_RETURN(*ref, ParseFileRef(o.ref));
  std::string dir = DatastoreOf(o);
  if (dir.empty()) {
    return Status::InvalidArgument("give the datastore with --datastore DIR (or OFFHOST_DATASTORE)");
  }
  OFFHOST_ASSIGN_OR_RETURN(*ds, storage::Datastore::Open(dir, false));
  OFFHOST_ASSIGN_OR_RETURN(auto snap, (*ds)->FindSnapshot(ref->vm, ref->snapshot));
  ref->snapshot = snap.id;
  return proxy::SnapshotFiles::Open(**ds, snap);
}

int RunLs(const FilesOptions& o) {
  FileRef ref;
  std::unique_ptr<storage::Datastore> ds;
  auto files = OpenFiles(o, &ref, &ds);
  if (!files.ok()) return ReportError(files.status());
  auto& g = (*files)->files();
  auto info = g.Stat(ref.path);
  if (!info.ok()) return ReportError(info.status());
  std::vector<mount::FileInfo> entries;
  if (info->type == mount::FileType::kDirectory) {
    auto list = g.List(ref.path);
    if (!list.ok()) return ReportError(list.status());
    entries = std::move(*list);
  } else {
    entries.push_back(*info);
  }
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& e : entries) {
      j.push_back({{"name", e.name}, {"type", ModeString(e).substr(0, 1)}, {"size", e.size},
                   {"mode", e.mode}, {"uid", e.uid}, {"gid", e.gid}, {"mtime", e.mtime},
                   {"link_target", e.link_target}});
    }
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  if (ref.path == "/") {
    for (const auto& v : g.volumes()) {
      std::cout << v.name << "\t" << HumanBytes(v.length) << "\t"
                << (v.fs_type.empty() ? v.not_indexed : v.fs_type) << "\n";
    }
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : entries) {
    rows.push_back({ModeString(e), std::to_string(e.uid), std::to_string(e.gid),
                    std::to_string(e.size), FormatTime(e.mtime),
                    e.name + (e.link_target.empty() ? "" : " -> " + e.link_target)});
  }
  PrintTable({"MODE", "UID", "GID", "SIZE", "MODIFIED", "NAME"}, rows, {1, 2, 3});
  return kExitOk;
}

int RunRestoreFile(const FilesOptions& o) {
  FileRef ref;
  std::unique_ptr<storage::Datastore> ds;
  auto files = OpenFiles(o, &ref, &ds);
  if (!files.ok()) return ReportError(files.status());
  proxy::FileRestoreOptions options;
  options.overwrite = o.overwrite;
  auto r = proxy::RestoreFiles((*files)->files(), ref.path, o.to, options);
  if (!r.ok()) return ReportError(r.status());
  for (const auto& s : r->skipped) std::cerr << "offhost: skipped (unsafe or unsupported): " << s << "\n";
  std::cout << "restored " << ref.vm << "@" << ref.snapshot << ":" << ref.path << " to " << o.to
            << ": " << r->files << " files, " << r->directories << " folders, " << r->symlinks
            << " symlinks, " << HumanBytes(r->bytes) << "\n";
  return kExitOk;
}

}  // namespace

void AddFilesCommands(CLI::App& app, RunFn* run) {
  auto o = std::make_shared<FilesOptions>();
  auto* ls = app.add_subcommand("ls", "List files inside a backup, without restoring it");
  ls->add_option("--datastore", o->datastore, "Datastore directory (default $OFFHOST_DATASTORE)");
  ls->add_option("PATH", o->ref, "VM@SNAPSHOT[:/path], e.g. web01@latest:/vda1/etc")->required();
  ls->add_flag("--json", o->json, "Print as JSON");
  ls->callback([run, o] { *run = [o] { return RunLs(*o); }; });

  auto r = std::make_shared<FilesOptions>();
  auto* rf = app.add_subcommand("restore-file", "Restore a file or folder from a backup");
  rf->add_option("--datastore", r->datastore, "Datastore directory (default $OFFHOST_DATASTORE)");
  rf->add_option("PATH", r->ref, "VM@SNAPSHOT:/path of a file or folder")->required();
  rf->add_option("--to", r->to, "Existing folder to restore into")->required();
  rf->add_flag("--overwrite", r->overwrite, "Replace files that already exist there");
  rf->callback([run, r] { *run = [r] { return RunRestoreFile(*r); }; });
}

}  // namespace offhost::cli
