// offhost ls [--datastore DIR] VM@SNAPSHOT[:/path] [--json]
// offhost restore-file [--datastore DIR] VM@SNAPSHOT:/path --to DIR [--overwrite]
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "offhost/proxy/file_restore.h"
#include "open_snapshot.h"

namespace offhost::cli {
namespace {

struct FilesOptions {
  std::string datastore;
  std::string ref;  // VM@SNAPSHOT[:/path]
  std::string to;
  bool overwrite = false;
  bool json = false;
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

int RunLs(const FilesOptions& o) {
  SnapshotPath ref;
  auto opened = OpenFiles(o, &ref);
  if (!opened.ok()) return ReportError(opened.status());
  auto& g = opened->files->files();
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
  SnapshotPath ref;
  auto opened = OpenFiles(o, &ref);
  if (!opened.ok()) return ReportError(opened.status());
  proxy::FileRestoreOptions options;
  options.overwrite = o.overwrite;
  auto r = proxy::RestoreFiles(opened->files->files(), ref.path, o.to, options);
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
