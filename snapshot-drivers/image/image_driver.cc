// `image` driver: the disk image files of a VM that is not running (powered off, or suspended
// to disk). Settings: disk.NAME=PATH for each disk (raw, qcow2, vmdk, vpc/vhd, vhdx, or a
// block device), optionally bitmap=NAME, a persistent qcow2 bitmap for incrementals.
//
// Each image is exported read-only by a qemu-nbd child process on a private unix socket in
// the work directory, with its detected format given explicitly (qemu never guesses). qemu-nbd
// takes the image's lock: a file that a running QEMU holds for writing is refused (that VM
// needs the libvirt or qemu driver), and while the export runs nobody can open the image for
// writing, so what is read is one point in time. Backing chains are followed read-only.
//
// Incrementals from a persistent bitmap: offhost never modifies the image, so it never clears
// the bitmap either. The bitmap marks every change since it was created, a superset of the
// changes since the previous backup, which makes an incremental correct only when the
// previous backup was read while that same bitmap already recorded, on the same file. The
// checkpoint therefore records, per disk, the file (device and inode) and how many bytes the
// bitmap marked then; an enabled bitmap only grows, so fewer marked bytes now means it was
// deleted and re-created (or cleared) since, and the disk gets a full backup. A bitmap that was
// re-created and has since marked at least as many bytes as before cannot be told apart, nor
// one disabled and re-enabled between two backups (a backup that finds it disabled records no
// checkpoint, so the next one is full).
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "offhost/snapshot-drivers/driver.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"
#include "offhost/storage/datastore.h"
#include "run_program.h"

namespace offhost::snapshot_drivers {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kCheckpointTag[] = "image-bitmap:";
const std::set<std::string> kFormats = {"raw", "qcow2", "vmdk", "vpc", "vhdx"};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void RemoveFile(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

// Waits up to `timeout` for a process that is not our child (no waitpid) to be gone.
bool WaitGone(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    auto state = stat.find(") ");
    if (stat.empty() || (state != std::string::npos && stat[state + 2] == 'Z')) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// A disk image as qemu-img sees it.
struct ImageFile {
  std::string path;  // canonical
  std::string format;
  uint64_t size = 0;
  std::vector<std::string> backing;  // the chain below the image, nearest first
  json bitmaps = json::array();      // qcow2 persistent bitmaps
  std::string file_id;               // "DEV:INODE": the very file, even if renamed
};

Result<std::string> CanonicalImagePath(const std::string& given, std::string* file_id) {
  std::error_code ec;
  fs::path path = fs::canonical(given, ec);
  if (ec) return Status::NotFound("disk image " + given + " cannot be opened: " + ec.message());
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno("stat " + path.string(), errno);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return Status::InvalidArgument("disk image " + given +
                                   " is not a regular file or block device; give the path of "
                                   "the VM's disk image");
  }
  // A device node's inode says nothing about the device behind it.
  *file_id = S_ISBLK(st.st_mode) ? "dev:" + std::to_string(st.st_rdev)
                                 : std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  return path.string();
}

Result<ImageFile> Inspect(const std::string& given) {
  ImageFile img;
  OFFHOST_ASSIGN_OR_RETURN(img.path, CanonicalImagePath(given, &img.file_id));
  // --force-share: only reading the header, which must work even when the image is in use
  // (the export below then tells that case apart).
  OFFHOST_ASSIGN_OR_RETURN(std::string out,
                           RunProgramOutput({"qemu-img", "info", "--output=json", "--force-share",
                                             "--backing-chain", img.path}));
  json chain = json::parse(out, nullptr, false);
  if (chain.is_discarded() || !chain.is_array() || chain.empty()) {
    return Status::Corruption("qemu-img info printed no image description for " + img.path);
  }
  const json& top = chain[0];
  img.format = top.value("format", "");
  img.size = top.value("virtual-size", uint64_t{0});
  if (!kFormats.count(img.format)) {
    return Status::NotSupported("disk image " + img.path + " is in format '" + img.format +
                                "', which the image driver does not read (raw, qcow2, vmdk, "
                                "vpc/vhd, vhdx); convert it with qemu-img convert");
  }
  for (size_t i = 1; i < chain.size(); ++i) img.backing.push_back(chain[i].value("filename", ""));
  if (top.contains("format-specific")) {
    img.bitmaps =
        top["format-specific"].value("data", json::object()).value("bitmaps", json::array());
  }
  return img;
}

// What the hypervisor has behind the disk: the file, and what it is backed by.
std::string Identity(const ImageFile& img) {
  std::string id = img.path;
  for (const auto& b : img.backing) id += " <- " + b;
  return id;
}

// Why the image's bitmap cannot serve incrementals at all; empty when it can.
std::string BitmapProblem(const ImageFile& img, const std::string& bitmap) {
  if (img.format != "qcow2") {
    return "disk image " + img.path + " is " + img.format + ", which has no persistent bitmaps";
  }
  for (const auto& b : img.bitmaps) {
    if (b.value("name", "") != bitmap) continue;
    auto flags = b.value("flags", json::array());
    auto has = [&](const char* flag) {
      return std::find(flags.begin(), flags.end(), flag) != flags.end();
    };
    // "in-use" stays set when the process that had the image open died without saving it.
    if (has("in-use"))
      return "bitmap " + bitmap + " is inconsistent (the VM crashed while it was in use)";
    if (!has("auto")) return "bitmap " + bitmap + " is disabled, so it does not record changes";
    return "";
  }
  return "bitmap " + bitmap + " is not in " + img.path +
         " (create it with `qemu-img bitmap --add --enable` while the VM is off, or in the "
         "hypervisor)";
}

// Bytes the export's dirty bitmap marks, over the whole disk.
Result<uint64_t> DirtyBytes(BlockDevice& dev) {
  uint64_t dirty = 0;
  for (uint64_t offset = 0; offset < dev.size();) {
    OFFHOST_ASSIGN_OR_RETURN(auto extents, dev.DirtyExtents(offset, dev.size() - offset));
    if (extents.empty()) return Status::IOError("empty dirty map from " + dev.description());
    for (const auto& e : extents) {
      if (e.type == ExtentType::kData) dirty += e.length;
      offset = e.offset + e.length;
    }
  }
  return dirty;
}

// A disk's state when a backup was read with the bitmap (see the top of the file).
struct BitmapMark {
  std::string file_id;
  uint64_t dirty = 0;
};

// "image-bitmap:{"bitmap":NAME,"disks":{"vda":{"file":"DEV:INODE","dirty":BYTES}}}"
std::string EncodeCheckpoint(const std::string& bitmap,
                             const std::map<std::string, BitmapMark>& marks) {
  json disks = json::object();
  for (const auto& [name, m] : marks) disks[name] = {{"file", m.file_id}, {"dirty", m.dirty}};
  return kCheckpointTag + json{{"bitmap", bitmap}, {"disks", disks}}.dump();
}

// The parent's marks for `bitmap`; empty when the parent was not read with it.
std::map<std::string, BitmapMark> DecodeCheckpoint(const std::string& checkpoint,
                                                   const std::string& bitmap) {
  std::map<std::string, BitmapMark> marks;
  if (!checkpoint.starts_with(kCheckpointTag)) return marks;
  json j = json::parse(checkpoint.substr(sizeof kCheckpointTag - 1), nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("bitmap", "") != bitmap) return marks;
  json disks = j.value("disks", json::object());
  for (const auto& [name, m] : disks.items()) {
    if (m.is_object()) marks[name] = {m.value("file", ""), m.value("dirty", uint64_t{0})};
  }
  return marks;
}

// Why this disk cannot be read incrementally against the parent; empty when it can.
std::string IncrementalProblem(const SnapshotRequest& req,
                               const std::map<std::string, BitmapMark>& parent,
                               const std::string& disk, const ImageFile& img,
                               const std::string& bitmap, uint64_t dirty) {
  if (req.full) return "full backup requested";
  if (req.parent_checkpoint.empty()) {
    return "no previous backup of this VM was read with bitmap " + bitmap;
  }
  auto it = parent.find(disk);
  if (it == parent.end()) {
    return "the previous backup was not taken with bitmap " + bitmap + " on this image";
  }
  if (it->second.file_id != img.file_id) {
    return img.path + " is not the file the previous backup read with bitmap " + bitmap;
  }
  if (dirty < it->second.dirty) return "bitmap " + bitmap + " was reset since the previous backup";
  return "";
}

// The socket of the export of STEM: STEM.sock, or when that is longer than a unix socket path
// may be (VM names may have 128 characters), WORK_DIR/image-HASH.sock with a hash of the stem
// (FNV-1a: the same in every build, so a later run finds a crashed one's socket).
std::string SocketOf(const std::string& stem) {
  std::string plain = stem + ".sock";
  if (plain.size() < sizeof(sockaddr_un::sun_path)) return plain;
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : stem) hash = (hash ^ c) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return stem.substr(0, stem.rfind('/') + 1) + "image-" + hex + ".sock";
}

// One read-only qemu-nbd export, owned: Stop() (or the destructor) ends it and removes its
// files. Its files are SocketOf(STEM), STEM.pid and STEM.log, STEM = WORK_DIR/image-VM@DISK.
class NbdServer {
 public:
  explicit NbdServer(std::string stem) : stem_(std::move(stem)) {}
  NbdServer(const NbdServer&) = delete;
  NbdServer& operator=(const NbdServer&) = delete;
  ~NbdServer() { Stop(); }

  std::string socket() const { return SocketOf(stem_); }
  std::string uri() const { return "nbd+unix:///?socket=" + socket(); }

  // Starts the export (with `bitmap`, unless empty) and returns a connection to it once it
  // serves, opened with the bitmap's context when there is one.
  Result<std::unique_ptr<BlockDevice>> Start(const ImageFile& img, const std::string& bitmap) {
    if (socket().size() >= sizeof(sockaddr_un::sun_path)) {  // even the hashed name
      return Status::InvalidArgument("the socket path " + socket() +
                                     " is too long for a unix socket; use a datastore with a "
                                     "shorter path");
    }
    RemoveFiles();
    std::vector<std::string> argv = {"qemu-nbd", "--read-only", "--persistent", "--shared=4"};
    argv.insert(argv.end(), {"-f", img.format, "--socket=" + socket()});
    if (!bitmap.empty()) argv.push_back("--bitmap=" + bitmap);
    argv.push_back(img.path);
    OFFHOST_ASSIGN_OR_RETURN(pid_, StartProgram(argv, stem_ + ".log"));
    // Written at once, so the next run finds this export if the proxy dies from here on.
    std::ofstream(stem_ + ".pid") << pid_ << "\n";
    NbdOpenOptions options;
    if (!bitmap.empty()) options.dirty_bitmap = "qemu:dirty-bitmap:" + bitmap;
    return Connect(img, options);
  }

  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      auto deadline = Clock::now() + std::chrono::seconds(5);
      int status;
      while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (Clock::now() > deadline) {
          ::kill(pid_, SIGKILL);
          WaitProgram(pid_);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      pid_ = -1;
    }
    RemoveFiles();
  }

  // A crashed proxy's export of the same stem: ended if it still runs, its files removed.
  // True when a qemu-nbd was ended.
  static bool StopStale(const std::string& stem) {
    std::string pid_text = ReadFile(stem + ".pid");
    pid_t pid = std::atoi(pid_text.c_str());
    std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    // The pid may since belong to another program: only our qemu-nbd on this socket goes.
    bool running = pid > 0 && cmdline.find("qemu-nbd") != std::string::npos &&
                   cmdline.find(SocketOf(stem)) != std::string::npos;
    if (running) {
      ::kill(pid, SIGTERM);
      if (!WaitGone(pid, std::chrono::seconds(5))) {
        ::kill(pid, SIGKILL);
        WaitGone(pid, std::chrono::seconds(5));
      }
    }
    NbdServer(stem).RemoveFiles();
    return running;
  }

 private:
  void RemoveFiles() const {
    RemoveFile(socket());
    for (const char* ext : {".pid", ".log"}) RemoveFile(stem_ + ext);
  }

  // qemu-nbd opens the image before it serves: until a connection succeeds, it either still
  // starts or has exited with the reason in its log.
  Result<std::unique_ptr<BlockDevice>> Connect(const ImageFile& img,
                                               const NbdOpenOptions& options) {
    auto deadline = Clock::now() + std::chrono::seconds(30);
    Status last = Status::Unavailable("qemu-nbd did not create " + socket());
    while (Clock::now() < deadline) {
      int status;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return StartError(img, ReadFile(stem_ + ".log"));
      }
      if (fs::exists(socket())) {
        auto dev = OpenNbd(uri(), options);
        if (dev.ok()) return dev;
        last = dev.status();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return last.WithContext("export of " + img.path + " did not start within 30 s");
  }

  static Status StartError(const ImageFile& img, const std::string& log) {
    if (log.find("lock") != std::string::npos) {
      return Status::FailedPrecondition(
          "disk image " + img.path +
          " is in use by a running QEMU/VM (it holds the image's lock); back the VM up with "
          "--driver libvirt or --driver qemu, or take a snapshot and back up the snapshot's "
          "read-only base image (" +
          log + ")");
    }
    if (log.starts_with("cannot run"))
      return Status::Unavailable(log + "; is qemu-utils installed?");
    return Status::IOError("qemu-nbd could not export " + img.path + ": " + log);
  }

  std::string stem_;
  pid_t pid_ = -1;
};

// Ends the exports a crashed run of this VM's backup left (one backup per VM runs at a time,
// so every export of this VM in the work directory is stale).
std::vector<std::string> StopStaleServers(const std::string& work_dir, const std::string& vm) {
  const std::string prefix = "image-" + vm + "@";
  std::set<std::string> stems;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(work_dir, ec)) {
    std::string name = entry.path().filename().string();
    auto dot = name.rfind('.');
    if (name.starts_with(prefix) && dot != std::string::npos)
      stems.insert(work_dir + "/" + name.substr(0, dot));
  }
  std::vector<std::string> stopped;
  for (const auto& stem : stems) {
    if (NbdServer::StopStale(stem)) stopped.push_back("qemu-nbd export " + SocketOf(stem));
  }
  return stopped;
}

class ImageView final : public PointInTimeView {
 public:
  ~ImageView() override { Release(false).IgnoreError(); }

  // Nothing on the images to commit or roll back: they were only read.
  Status Release(bool) override {
    servers.clear();
    return Status::OK();
  }

  std::vector<std::unique_ptr<NbdServer>> servers;
};

class ImageDriver final : public SnapshotDriver {
 public:
  Result<VmIdentity> Identify(const SnapshotRequest& req) override {
    if (req.vm.empty()) return Status::InvalidArgument("give the VM's name with --vm NAME");
    return VmIdentity{req.vm, ""};
  }

  Result<std::unique_ptr<PointInTimeView>> Take(const SnapshotRequest& req) override {
    OFFHOST_RETURN_IF_ERROR(storage::ValidateName("VM", req.vm));
    StopStaleServers(req.work_dir, req.vm);  // what they were is of no interest here
    auto view = std::make_unique<ImageView>();
    view->vm_name = req.vm;
    view->consistency_reason = "read from the image file of a VM that is not running";
    std::string bitmap;
    if (auto it = req.settings.find("bitmap"); it != req.settings.end()) bitmap = it->second;
    auto parent = DecodeCheckpoint(req.parent_checkpoint, bitmap);
    std::map<std::string, BitmapMark> marks;
    json config = {{"driver", "image"}, {"disks", json::object()}};
    for (const auto& [key, path] : req.settings) {
      if (!key.starts_with("disk.")) continue;
      std::string name = key.substr(5);
      OFFHOST_RETURN_IF_ERROR(storage::ValidateName("disk", name));
      std::string stem = req.work_dir + "/image-" + req.vm + "@" + name;
      auto img = Inspect(path);
      if (!img.ok()) return img.status().WithContext("disk " + name);
      config["disks"][name] = {{"path", img->path},
                               {"format", img->format},
                               {"size", img->size},
                               {"backing", img->backing}};
      std::string unusable = bitmap.empty() ? "" : BitmapProblem(*img, bitmap);
      bool use_bitmap = !bitmap.empty() && unusable.empty();
      auto server = std::make_unique<NbdServer>(stem);
      auto dev = server->Start(*img, use_bitmap ? bitmap : "");
      view->servers.push_back(std::move(server));  // released with the view, even on failure
      if (!dev.ok()) return dev.status().WithContext("disk " + name);
      ViewDisk d;
      d.name = name;
      d.uri = view->servers.back()->uri();
      d.size = (*dev)->size();
      d.identity = Identity(*img);
      if (use_bitmap) {
        auto dirty = DirtyBytes(**dev);
        if (!dirty.ok())
          return dirty.status().WithContext("disk " + name + ": reading bitmap " + bitmap);
        marks[name] = {img->file_id, *dirty};
        d.full_reason = IncrementalProblem(req, parent, name, *img, bitmap, *dirty);
        if (d.full_reason.empty()) d.dirty_bitmap = "qemu:dirty-bitmap:" + bitmap;
      } else if (req.full) {
        d.full_reason = "full backup requested";
      } else {
        d.full_reason =
            bitmap.empty()
                ? "no --bitmap given (a persistent qcow2 bitmap makes incrementals possible)"
                : unusable;
      }
      view->disks.push_back(std::move(d));
    }
    if (view->disks.empty()) {
      return Status::InvalidArgument(
          "--disk is required: the image driver needs at least one --disk NAME=PATH");
    }
    if (!marks.empty()) view->checkpoint = EncodeCheckpoint(bitmap, marks);
    view->vm_config = config.dump(2);
    return std::unique_ptr<PointInTimeView>(std::move(view));
  }

  // The qemu-nbd exports a proxy killed mid-backup left running (they outlive it).
  Result<std::vector<std::string>> ReleaseLeftovers(const SnapshotRequest& req) override {
    OFFHOST_RETURN_IF_ERROR(storage::ValidateName("VM", req.vm));
    return StopStaleServers(req.work_dir, req.vm);
  }

  // qemu-img info of each image (header only, shared lock): no export is started. Whether the
  // bitmap was reset since the last backup shows only when it is read, so a disk reported
  // incremental here may still get a full backup (with that reason).
  Result<VmDescription> Describe(const SnapshotRequest& req) override {
    VmDescription out;
    out.name = req.vm;
    out.power_state = "stopped";  // the image driver is for VMs that do not run
    std::string bitmap;
    if (auto it = req.settings.find("bitmap"); it != req.settings.end()) bitmap = it->second;
    auto parent = DecodeCheckpoint(req.parent_checkpoint, bitmap);
    for (const auto& [key, path] : req.settings) {
      if (!key.starts_with("disk.")) continue;
      DiskInfo d;
      d.name = key.substr(5);
      auto img = Inspect(path);
      if (!img.ok()) return img.status().WithContext("disk " + d.name);
      d.source = img->path;
      d.format = img->format;
      d.size = img->size;
      if (bitmap.empty()) {
        d.full_reason =
            "no bitmap configured; a persistent qcow2 bitmap makes incrementals possible";
      } else if (std::string why = BitmapProblem(*img, bitmap); !why.empty()) {
        d.full_reason = why;
      } else {
        d.full_reason = IncrementalProblem(req, parent, d.name, *img, bitmap, UINT64_MAX);
      }
      out.disks.push_back(std::move(d));
    }
    if (out.disks.empty()) {
      return Status::InvalidArgument("the image driver needs at least one disk");
    }
    return out;
  }
};

OFFHOST_REGISTER_DRIVER(
    "image", "disk image files of a VM that is not running (--disk NAME=PATH [--bitmap NAME])",
    ImageDriver);

}  // namespace
}  // namespace offhost::snapshot_drivers
