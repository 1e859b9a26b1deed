// GuestFiles over real file-system images made at run time (mkfs.xfs -p, mkfs.ext4 -d,
// sfdisk) inside an LVM2 PV written in memory: volumes and their names, files through XFS and
// ext4 on LVs and partitions, and Extents(): every extent's disk bytes are the file's bytes.
#include "offhost/mount/guest_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>

#include "lvm_test_util.h"
#include "test_util.h"

namespace offhost::mount {
namespace {

using offhost::mount::testing::LvSpec;
using offhost::mount::testing::PvHeader;
using offhost::mount::testing::PvSpec;
using offhost::mount::testing::SegSpec;
using offhost::mount::testing::VgText;
using offhost::testing::RandomBytes;
using offhost::testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kExtent = 4 * kMiB;

// A disk image file read with pread: images here are tens of MiB and mostly holes.
class FileDisk : public BlockDevice {
 public:
  explicit FileDisk(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    struct stat st {};
    if (fd_ >= 0) ::fstat(fd_, &st);
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~FileDisk() override {
    if (fd_ >= 0) ::close(fd_);
  }
  uint64_t size() const override { return size_; }
  std::string description() const override { return "test image"; }
  Status Read(std::span<const ReadRequest> requests) override {
    for (const auto& r : requests) {
      if (::pread(fd_, r.buffer.data(), r.buffer.size(), static_cast<off_t>(r.offset)) !=
          static_cast<ssize_t>(r.buffer.size())) {
        return Status::IOError("short read");
      }
    }
    return Status::OK();
  }
  std::string Bytes(uint64_t off, uint64_t len) {
    std::string s(len, '\0');
    ReadRequest r{off, {s.data(), s.size()}};
    EXPECT_TRUE(Read({&r, 1}).ok());
    return s;
  }

 private:
  int fd_;
  uint64_t size_ = 0;
};

bool Have(const char* tool) {
  return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}
void Sh(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; }
void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}
// Copies `len` bytes of `src` at `src_off` into `dst` at `dst_off` (dst must exist).
void Splice(const std::string& src, uint64_t src_off, const std::string& dst, uint64_t dst_off,
            uint64_t len) {
  Sh("dd if=" + src + " of=" + dst + " bs=1M iflag=skip_bytes,count_bytes oflag=seek_bytes skip=" +
     std::to_string(src_off) + " seek=" + std::to_string(dst_off) +
     " count=" + std::to_string(len) + " conv=notrunc,sparse status=none");
}

// Two disks: vda is an LVM2 PV on the whole disk (VG "rhel": root = XFS in two segments stored
// in reverse order, home = ext4, plus LVs that cannot be read), vdb has a GPT whose first
// partition holds XFS without bigtime timestamps.
class GuestFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* t : {"mkfs.xfs", "mkfs.ext4", "sfdisk", "dd", "python3"}) {
      if (!Have(t)) GTEST_SKIP() << t << " is not installed";
    }
    std::string src = dir_ / "src";
    Sh("mkdir -p " + src + "/root/etc " + src + "/root/var/spool " + src + "/home/alice " + src +
       "/boot/grub2");
    files_["/rhel-root/big.bin"] = RandomBytes(6 * kMiB + 123, 1);  // crosses root's segments
    files_["/rhel-root/etc/hosts"] = "127.0.0.1 localhost\n";
    files_["/rhel-root/var/spool/mail.txt"] = RandomBytes(70000, 2);
    files_["/rhel-home/alice/data.bin"] = RandomBytes(3 * kMiB + 5, 3);
    files_["/rhel-home/alice/small.txt"] = "hello\n";
    files_["/vdb1/vmlinuz"] = RandomBytes(2 * kMiB + 1, 4);
    files_["/vdb1/grub2/grub.cfg"] = "set default=0\n";
    std::map<std::string, std::string> where = {
        {"/rhel-root", "/root"}, {"/rhel-home", "/home"}, {"/vdb1", "/boot"}};
    for (const auto& [path, data] : files_) {
      std::string vol = path.substr(0, path.find('/', 1));
      WriteFile(src + where[vol] + path.substr(vol.size()), data);
    }
    Sh("ln -s etc/hosts " + src + "/root/hosts-link && chmod 4750 " + src + "/root/etc/hosts");
    // The fixture's helpers need $OFFHOST only to be set.
    std::string lib = "OFFHOST=/bin/true; source " + SourceDir() + "/tests/integration/lib.sh; ";
    t0_ = std::time(nullptr);
    Sh("bash -c '" + lib + "make_small_xfs " + (dir_ / "root.xfs") + " 40 " + src + "/root'");
    t1_ = std::time(nullptr);
    // vdb1: XFS with classic timestamps, so both encodings are read.
    Sh("bash -c '" + lib + "xfs_proto " + src + "/boot >" + (dir_ / "boot.proto") +
       " && truncate -s 32M " + (dir_ / "boot.xfs") +
       " && TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q -f -m bigtime=0 -p " +
       (dir_ / "boot.proto") + " " + (dir_ / "boot.xfs") + "'");
    Sh("truncate -s 8M " + (dir_ / "home.ext4") + " && mkfs.ext4 -q -F -d " + src + "/home " +
       (dir_ / "home.ext4") + " >/dev/null");

    // vda: the PV. root LE 0 on PE 9 and LE 1-9 on PE 0-8 (XFS puts big.bin in its first
    // allocation group, across LV byte 4 MiB); home on PE 10-11; swap on PE 12. (mkfs.xfs -p
    // writes a damaged file system when a file is larger than an allocation group: 10 MiB.)
    PvSpec pv;
    pv.size = 1 * kMiB + 14 * kExtent;
    PvSpec missing;
    missing.uuid = std::string(32, 'Z');
    pv.text = VgText("rhel", kExtent, {{"pv0", pv}, {"pv1", missing}},
                     {{"root", {{0, 1, "pv0", 9}, {1, 9, "pv0", 0}}},
                      {"home", {{0, 2, "pv0", 10}}},
                      {"thin", {{0, 1, "", 0, "thin"}}},
                      {"far", {{0, 1, "pv1", 0}}},
                      {"swap-1", {{0, 1, "pv0", 12}}},
                      {"pool_tmeta", {{0, 1, "pv0", 5}}, false}});
    vda_ = dir_ / "vda.raw";
    WriteFile(vda_, PvHeader(pv));
    Sh("truncate -s " + std::to_string(pv.size) + " " + vda_);
    Splice(dir_ / "root.xfs", 0, vda_, pv.pe_start + 9 * kExtent, kExtent);
    Splice(dir_ / "root.xfs", kExtent, vda_, pv.pe_start, 9 * kExtent);
    Splice(dir_ / "home.ext4", 0, vda_, pv.pe_start + 10 * kExtent, 2 * kExtent);
    std::string swap(4096, '\0');
    std::memcpy(&swap[4086], "SWAPSPACE2", 10);
    std::fstream f(vda_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(pv.pe_start + 12 * kExtent));
    f.write(swap.data(), static_cast<std::streamsize>(swap.size()));
    f.close();

    vdb_ = dir_ / "vdb.raw";
    Sh("truncate -s 40M " + vdb_ +
       " && printf 'label: gpt\\nstart=4096, size=65536, type=L\\n' | sfdisk -q " + vdb_);
    Splice(dir_ / "boot.xfs", 0, vdb_, 4096 * 512, 32 * kMiB);

    disks_["vda"] = std::make_unique<FileDisk>(vda_);
    disks_["vdb"] = std::make_unique<FileDisk>(vdb_);
    auto g = GuestFiles::Open({{"vda", disks_["vda"].get()}, {"vdb", disks_["vdb"].get()}});
    ASSERT_TRUE(g.ok()) << g.status().message();
    files = std::move(*g);
  }

  static std::string SourceDir() {
    const char* s = std::getenv("OFFHOST_SOURCE_DIR");
    return s ? s : OFFHOST_SOURCE_DIR_DEFAULT;
  }

  TempDir dir_;
  std::string vda_, vdb_;
  std::map<std::string, std::string> files_;  // guest path -> content
  std::map<std::string, std::unique_ptr<FileDisk>> disks_;
  std::unique_ptr<GuestFiles> files;
  time_t t0_ = 0, t1_ = 0;
};

const VolumeInfo* Find(const std::vector<VolumeInfo>& vols, const std::string& name) {
  for (const auto& v : vols) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

TEST_F(GuestFilesTest, FindsPartitionsPhysicalAndLogicalVolumes) {
  const auto& vols = files->volumes();
  std::vector<std::string> names;
  for (const auto& v : vols) names.push_back(v.name);
  EXPECT_EQ(names, (std::vector<std::string>{"vda", "vdb1", "rhel-root", "rhel-home", "rhel-thin",
                                             "rhel-far", "rhel-swap--1"}));
  EXPECT_NE(Find(vols, "vda")->not_indexed.find("LVM2 physical volume of volume group rhel"),
            std::string::npos);
  EXPECT_EQ(Find(vols, "vdb1")->fs_type, "xfs");
  EXPECT_EQ(Find(vols, "vdb1")->offset, 4096u * 512);
  EXPECT_EQ(Find(vols, "rhel-root")->fs_type, "xfs");
  EXPECT_EQ(Find(vols, "rhel-root")->length, 10 * kExtent);
  EXPECT_EQ(Find(vols, "rhel-root")->offset, kMiB + 9 * kExtent);  // where LV byte 0 is
  EXPECT_EQ(Find(vols, "rhel-home")->fs_type, "ext4");
  EXPECT_NE(Find(vols, "rhel-thin")->not_indexed.find("type 'thin'"), std::string::npos)
      << Find(vols, "rhel-thin")->not_indexed;
  EXPECT_NE(Find(vols, "rhel-far")->not_indexed.find("is on none of the disks in this backup"),
            std::string::npos);
  EXPECT_NE(Find(vols, "rhel-swap--1")->not_indexed.find("swap"), std::string::npos)
      << Find(vols, "rhel-swap--1")->not_indexed;

  auto root = files->List("/");
  ASSERT_TRUE(root.ok());
  std::vector<std::string> dirs;
  for (const auto& e : *root) dirs.push_back(e.name);
  EXPECT_EQ(dirs, (std::vector<std::string>{"vdb1", "rhel-root", "rhel-home"}));
  auto pv = files->List("/vda");
  EXPECT_EQ(pv.status().code(), StatusCode::kNotSupported);
}

TEST_F(GuestFilesTest, ReadsFilesOnXfsAndExt4InLogicalVolumesAndPartitions) {
  for (const auto& [path, data] : files_) {
    std::string got;
    Status st = files->ReadFile(path, [&](uint64_t off, std::span<const char> d) {
      EXPECT_EQ(off, got.size());
      got.append(d.data(), d.size());
      return Status::OK();
    });
    ASSERT_TRUE(st.ok()) << path << ": " << st.message();
    EXPECT_EQ(got, data) << path;
    auto info = files->Stat(path);
    ASSERT_TRUE(info.ok()) << path;
    EXPECT_EQ(info->size, data.size());
    EXPECT_EQ(info->type, FileType::kRegular);
  }
  auto hosts = files->Stat("/rhel-root/etc/hosts");
  ASSERT_TRUE(hosts.ok());
  EXPECT_EQ(hosts->mode, 04750u);
  // XFS inodes carry mkfs's clock (bigtime encoding on rhel-root, classic on vdb1).
  EXPECT_GE(hosts->mtime, t0_ - 1);
  EXPECT_LE(hosts->mtime, t1_ + 1);
  auto kernel = files->Stat("/vdb1/vmlinuz");
  ASSERT_TRUE(kernel.ok());
  EXPECT_GE(kernel->mtime, t0_ - 1);
  EXPECT_LE(kernel->mtime, std::time(nullptr) + 1);
  auto link = files->Stat("/rhel-root/hosts-link");
  ASSERT_TRUE(link.ok());
  EXPECT_EQ(link->type, FileType::kSymlink);
  EXPECT_EQ(link->link_target, "etc/hosts");
  auto list = files->List("/rhel-root/");
  ASSERT_TRUE(list.ok());
  std::vector<std::string> names;
  for (const auto& e : *list) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"big.bin", "etc", "hosts-link", "var"}));
  auto vol = files->Stat("/rhel-root");
  ASSERT_TRUE(vol.ok());
  EXPECT_EQ(vol->name, "rhel-root");
  EXPECT_EQ(vol->type, FileType::kDirectory);
  EXPECT_EQ(files->Stat("/rhel-root/nope").status().code(), StatusCode::kNotFound);
}

TEST_F(GuestFilesTest, ExtentsPointAtTheFilesBytesOnTheDisks) {
  for (const auto& [path, data] : files_) {
    auto extents = files->Extents(path);
    ASSERT_TRUE(extents.ok()) << path << ": " << extents.status().message();
    uint64_t covered = 0, next = 0;
    for (const auto& e : *extents) {
      ASSERT_GE(e.file_offset, next) << path;  // in file order, no overlap
      ASSERT_LE(e.file_offset + e.length, data.size()) << path;
      ASSERT_TRUE(disks_.count(e.disk)) << e.disk;
      EXPECT_EQ(disks_[e.disk]->Bytes(e.disk_offset, e.length),
                data.substr(e.file_offset, e.length))
          << path << " extent at file offset " << e.file_offset;
      covered += e.length;
      next = e.file_offset + e.length;
    }
    // None of these files has holes or inline data: the extents cover all of it.
    EXPECT_EQ(covered, data.size()) << path;
  }
  // big.bin lies where root's first segment (disk PE 9) ends and its second (PE 0-8) starts:
  // one file-system extent, two disk extents, the second before the first.
  auto big = files->Extents("/rhel-root/big.bin");
  ASSERT_TRUE(big.ok());
  bool jumped_back = false;
  for (size_t i = 1; i < big->size(); ++i) {
    if ((*big)[i].disk_offset < (*big)[i - 1].disk_offset) jumped_back = true;
  }
  EXPECT_TRUE(jumped_back) << "big.bin should cross from LV segment 1 into segment 2";
  EXPECT_EQ((*big)[0].disk, "vda");

  EXPECT_EQ(files->Extents("/rhel-root/etc").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(files->Extents("/rhel-root/hosts-link").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(files->Extents("/rhel-home/alice").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(files->Extents("/rhel-home/nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(files->Extents("/").status().code(), StatusCode::kInvalidArgument);
}

// Volumes are named as Linux names the guest's partitions, so /vda5 here is the guest's
// /dev/vda5: MBR logical partitions from 5 on, an MBR primary or GPT entry by its slot (a gap
// in the table stays a gap). Listings hold every guest file, '$' names included, and none of
// the entries The Sleuth Kit adds (a FAT volume label, $MBR, $FAT1, $OrphanFiles, exFAT's
// $ALLOC_BITMAP...).
TEST(GuestFilesNamingTest, NamesPartitionsLikeLinuxAndListsOnlyGuestFiles) {
  for (const char* t : {"mkfs.vfat", "mcopy", "mkfs.ext4", "sfdisk", "dd"}) {
    if (!Have(t)) GTEST_SKIP() << t << " is not installed";
  }
  TempDir dir;
  Sh("cd " + dir.path() + " && mkdir -p tree/'$HOME' && echo d >'tree/$dollar' && echo a >A.TXT" +
     " && mkfs.ext4 -q -F -d tree ext.img 4M >/dev/null && mkfs.vfat -n GUESTLABEL -C fat.img "
     "4096 " +
     ">/dev/null && mcopy -i fat.img A.TXT ::/A.TXT && mcopy -i fat.img A.TXT '::/$DATA.TXT'");
  std::string mbr = dir / "mbr.raw", gpt = dir / "gpt.raw";
  // slot 1: FAT; slot 2 empty; slot 3: extended holding two logical partitions (5, 6)
  Sh("truncate -s 24M " + mbr + " && printf 'label: dos\\nx1 : start=2048, size=8192, type=1\\n" +
     "x3 : start=12288, size=30720, type=5\\nx5 : start=14336, size=4096, type=83\\n" +
     "x6 : start=20480, size=8192, type=83\\n' | sfdisk -q " + mbr);
  Splice(dir / "fat.img", 0, mbr, 2048 * 512, 4 * kMiB);
  Splice(dir / "ext.img", 0, mbr, 20480 * 512, 4 * kMiB);
  // GPT entries 2 and 4 only
  Sh("truncate -s 12M " + gpt + " && printf 'label: gpt\\nx2 : start=2048, size=8192, type=L\\n" +
     "x4 : start=12288, size=4096, type=L\\n' | sfdisk -q " + gpt);
  Splice(dir / "ext.img", 0, gpt, 2048 * 512, 4 * kMiB);
  bool exfat = Have("mkfs.exfat");  // exfatprogs: an empty exFAT with a label on entry 4
  if (exfat) {
    Sh("cd " + dir.path() + " && truncate -s 2M exfat.img && mkfs.exfat -b 4096 -L LBL " +
       "exfat.img >/dev/null");
    Splice(dir / "exfat.img", 0, gpt, 12288 * 512, 2 * kMiB);
  }
  FileDisk sda(mbr), vdb(gpt);
  auto g = GuestFiles::Open({{"sda", &sda}, {"vdb", &vdb}});
  ASSERT_TRUE(g.ok()) << g.status().message();
  std::vector<std::string> names;
  for (const auto& v : (*g)->volumes()) names.push_back(v.name);
  EXPECT_EQ(names, (std::vector<std::string>{"sda1", "sda5", "sda6", "vdb2", "vdb4"}));
  auto names_in = [&](const std::string& path) {
    std::vector<std::string> out;
    auto list = (*g)->List(path);
    EXPECT_TRUE(list.ok()) << path << ": " << list.status().message();
    if (list.ok()) {
      for (const auto& e : *list) out.push_back(e.name);
    }
    return out;
  };
  EXPECT_EQ(names_in("/sda1"), (std::vector<std::string>{"$DATA.TXT", "A.TXT"}));
  auto fat_root = (*g)->Stat("/sda1");  // FAT's root has no entry of its own: a plain folder
  ASSERT_TRUE(fat_root.ok());
  EXPECT_EQ(fat_root->mode, 0755u);
  EXPECT_EQ(names_in("/sda6"), (std::vector<std::string>{"$HOME", "$dollar", "lost+found"}));
  EXPECT_EQ(names_in("/vdb2"), (std::vector<std::string>{"$HOME", "$dollar", "lost+found"}));
  if (exfat) {
    EXPECT_EQ((*g)->volumes().back().fs_type, "exfat");
    EXPECT_EQ(names_in("/vdb4"), std::vector<std::string>{});  // no $ALLOC_BITMAP, $UPCASE_TABLE
  }
}

}  // namespace
}  // namespace offhost::mount
