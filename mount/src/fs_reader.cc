#include "fs_reader.h"

#include <algorithm>
#include <mutex>

namespace offhost::mount::internal {
namespace {

// A function-local table: registrars in other files run during static initialisation, in an
// order the language does not fix, so the table must exist before the first of them.
std::vector<FsReaderEntry>& Table() {
  static std::vector<FsReaderEntry> table;
  return table;
}
std::mutex& TableMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

void ListedInodes::Remember(const std::string& folder,
                            std::unordered_map<std::string, uint64_t> children) {
  std::erase_if(folders_, [&](const auto& f) { return f.first == folder; });
  folders_.emplace_front(folder, std::move(children));
  if (folders_.size() > kFolders) folders_.pop_back();
}

const std::unordered_map<std::string, uint64_t>* ListedInodes::FolderOf(const std::string& path,
                                                                        std::string* name) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos || slash + 1 == path.size()) return nullptr;
  const std::string folder = slash == 0 ? "/" : path.substr(0, slash);
  for (auto it = folders_.begin(); it != folders_.end(); ++it) {
    if (it->first != folder) continue;
    // Used again: kept longest. A folder whose sub-folders are being walked is asked for each
    // of them, so it stays however many of them are listed meanwhile.
    folders_.splice(folders_.begin(), folders_, it);
    *name = path.substr(slash + 1);
    return &folders_.front().second;
  }
  return nullptr;
}

std::optional<uint64_t> ListedInodes::Find(const std::string& path) {
  std::string name;
  const auto* children = FolderOf(path, &name);
  if (!children) return std::nullopt;
  auto it = children->find(name);
  if (it == children->end()) return std::nullopt;
  return it->second;
}

bool ListedInodes::KnownAbsent(const std::string& path) {
  std::string name;
  const auto* children = FolderOf(path, &name);
  return children && !children->count(name);
}

bool RegisterFsReader(const char* name, int order, FsOpenFn open) {
  std::lock_guard<std::mutex> lock(TableMutex());
  Table().push_back({name, order, open});
  return true;
}

std::vector<FsReaderEntry> FsReaders() {
  std::lock_guard<std::mutex> lock(TableMutex());
  std::vector<FsReaderEntry> out = Table();
  std::stable_sort(out.begin(), out.end(),
                   [](const FsReaderEntry& a, const FsReaderEntry& b) { return a.order < b.order; });
  return out;
}

Result<std::unique_ptr<FsReader>> OpenFileSystem(BlockDevice& volume) {
  std::string seen;
  for (const auto& r : FsReaders()) {
    auto fs = r.open(volume);
    if (fs.ok()) return fs;
    if (fs.status().code() != StatusCode::kNotFound) {
      return fs.status().WithContext(r.name);
    }
    seen += (seen.empty() ? "" : "; ") + std::string(r.name) + ": " + fs.status().message();
  }
  if (seen.empty()) return Status::NotFound("no file-system reader is built in");
  return Status::NotFound("no file system recognised (" + seen + ")");
}

}  // namespace offhost::mount::internal
