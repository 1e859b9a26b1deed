// Logical volumes of a disk opened as disks of their own (shared LVM on a SAN LUN): each LV
// reads back the bytes written at its extents, holes of the disk below show through, and
// what cannot be read says why.
#include "offhost/mount/logical_volumes.h"

#include <gtest/gtest.h>

#include "lvm_test_util.h"
#include "test_util.h"

namespace offhost::mount {
namespace {

using offhost::mount::testing::LvSpec;
using offhost::mount::testing::PvHeader;
using offhost::mount::testing::PvSpec;
using offhost::mount::testing::SegSpec;
using offhost::mount::testing::VgText;
using offhost::testing::MemoryDisk;
using offhost::testing::RandomBytes;

constexpr uint64_t kExtent = 4 << 20;

// A whole-disk PV of VG "san" holding vm1-disk0 (two extents, stored in reverse order),
// vm2-disk0 (one extent, never written: a hole on a thin LUN) and a thin LV.
class LogicalVolumesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PvSpec pv;
    pv.text = VgText("san", kExtent, {{"pv0", pv}},
                     {{"vm1-disk0", {{0, 1, "pv0", 5}, {1, 1, "pv0", 2}}},
                      {"vm2-disk0", {{0, 1, "pv0", 7}}},
                      {"thin1", {{0, 1, "pv0", 9, "thin"}}}});
    disk_ = std::make_shared<MemoryDisk>(pv.size);
    disk_->Put(0, PvHeader(pv));
    first_ = RandomBytes(kExtent, 1);
    second_ = RandomBytes(kExtent, 2);
    disk_->Put(pv.pe_start + 5 * kExtent, first_);
    disk_->Put(pv.pe_start + 2 * kExtent, second_);
  }

  std::shared_ptr<MemoryDisk> disk_;
  std::string first_, second_;
};

TEST_F(LogicalVolumesTest, ListsTheVolumesWithSizesAndWhyOneCannotBeRead) {
  auto lvs = ListLogicalVolumes(*disk_);
  ASSERT_TRUE(lvs.ok()) << lvs.status().message();
  ASSERT_EQ(lvs->size(), 3u);
  EXPECT_EQ((*lvs)[0].vg, "san");
  EXPECT_EQ((*lvs)[0].lv, "vm1-disk0");
  EXPECT_EQ((*lvs)[0].size, 2 * kExtent);
  EXPECT_EQ((*lvs)[0].unreadable, "");
  EXPECT_EQ((*lvs)[1].size, kExtent);
  EXPECT_NE((*lvs)[2].unreadable.find("thin"), std::string::npos) << (*lvs)[2].unreadable;
}

TEST_F(LogicalVolumesTest, ReadsAVolumeThroughItsSegments) {
  auto lv = OpenLogicalVolume(disk_, "san", "vm1-disk0");
  ASSERT_TRUE(lv.ok()) << lv.status().message();
  ASSERT_EQ((*lv)->size(), 2 * kExtent);
  std::string got(2 * kExtent, '\0');
  ReadRequest r{0, std::span<char>(got.data(), got.size())};
  ASSERT_TRUE((*lv)->Read({&r, 1}).ok());
  EXPECT_TRUE(got == first_ + second_);
}

TEST_F(LogicalVolumesTest, ShowsTheHolesOfTheDiskBelow) {
  auto lv = OpenLogicalVolume(disk_, "san", "vm2-disk0");
  ASSERT_TRUE(lv.ok()) << lv.status().message();
  auto extents = (*lv)->Extents(0, kExtent);
  ASSERT_TRUE(extents.ok()) << extents.status().message();
  ASSERT_FALSE(extents->empty());
  EXPECT_EQ(extents->front().offset, 0u);
  EXPECT_EQ(extents->front().type, ExtentType::kHole);
}

TEST_F(LogicalVolumesTest, NamesWhatThereIsWhenAskedForWhatIsNot) {
  auto missing = OpenLogicalVolume(disk_, "san", "vm3-disk0");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("san/vm1-disk0"), std::string::npos)
      << missing.status().message();
  auto thin = OpenLogicalVolume(disk_, "san", "thin1");
  EXPECT_EQ(thin.status().code(), StatusCode::kNotSupported);
  auto blank = OpenLogicalVolume(std::make_shared<MemoryDisk>(8 << 20), "san", "vm1-disk0");
  EXPECT_NE(blank.status().message().find("no LVM2 volume group"), std::string::npos)
      << blank.status().message();
}

}  // namespace
}  // namespace offhost::mount
