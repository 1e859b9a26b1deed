// LVM2 labels, metadata text and LV layouts: linear LVs in any number of segments are mapped,
// the rest is refused with a reason a person can act on.
#include "lvm_metadata.h"

#include <gtest/gtest.h>

#include "lvm_test_util.h"
#include "test_util.h"

namespace offhost::mount::internal {
namespace {

using offhost::mount::testing::LvSpec;
using offhost::mount::testing::PvHeader;
using offhost::mount::testing::PvSpec;
using offhost::mount::testing::SegSpec;
using offhost::mount::testing::VgText;
using offhost::testing::MemoryDisk;

constexpr uint64_t kExtent = 4 << 20;

LvmVolumeGroup Parse(const std::string& text) {
  auto vg = ParseLvmMetadata(text);
  EXPECT_TRUE(vg.ok()) << vg.status().message();
  return vg.ok() ? *vg : LvmVolumeGroup{};
}

const LvmLogicalVolume& Lv(const LvmVolumeGroup& vg, const std::string& name) {
  for (const auto& lv : vg.lvs) {
    if (lv.name == name) return lv;
  }
  ADD_FAILURE() << "no LV " << name;
  static LvmLogicalVolume none;
  return none;
}

TEST(LvmMetadata, ReadsLabelAndMetadataTextIncludingAWrappedRing) {
  PvSpec pv;
  pv.text = VgText("rhel", kExtent, {{"pv0", pv}}, {{"root", {{0, 2, "pv0", 0}}}});
  for (uint64_t at : {uint64_t{512}, pv.mda_size - 100}) {  // the second wraps after 100 bytes
    pv.text_at = at;
    MemoryDisk disk(pv.size);
    disk.Put(0, PvHeader(pv));
    auto label = ReadLvmLabel(disk);
    ASSERT_TRUE(label.ok()) << label.status().message();
    EXPECT_EQ(label->pv_uuid, pv.uuid);
    EXPECT_EQ(label->pe_start, pv.pe_start);
    EXPECT_EQ(label->device_size, pv.size);
    ASSERT_EQ(label->metadata_areas.size(), 1u);
    auto text = ReadLvmMetadataText(disk, *label);
    ASSERT_TRUE(text.ok()) << text.status().message();
    EXPECT_EQ(*text, pv.text);
  }
  MemoryDisk blank(1 << 20);
  EXPECT_EQ(ReadLvmLabel(blank).status().code(), StatusCode::kNotFound);
}

TEST(LvmMetadata, ParsesGroupVolumesAndSegments) {
  PvSpec pv0, pv1;
  pv1.uuid = std::string(32, 'B');
  LvmVolumeGroup vg = Parse(VgText(
      "rhel", kExtent, {{"pv0", pv0}, {"pv1", pv1}},
      {{"root", {{0, 2, "pv0", 0}, {2, 18, "pv0", 6}}}, {"home", {{0, 4, "pv1", 2}}},
       {"pool_tdata", {{0, 1, "pv0", 30}}, false}}));
  EXPECT_EQ(vg.name, "rhel");
  EXPECT_EQ(vg.id, "NewJzS-Z97q-emfl-eGf3-YLNh-wHvb-3KMES6");
  EXPECT_EQ(vg.seqno, 3u);
  EXPECT_EQ(vg.extent_size, kExtent);
  ASSERT_EQ(vg.pvs.size(), 2u);
  EXPECT_EQ(vg.pvs[0].uuid, pv0.uuid);  // dashes dropped, as in the label
  EXPECT_EQ(vg.pvs[1].pe_start, 1u << 20);
  ASSERT_EQ(vg.lvs.size(), 3u);
  EXPECT_TRUE(Lv(vg, "root").visible());
  EXPECT_FALSE(Lv(vg, "pool_tdata").visible());
  ASSERT_EQ(Lv(vg, "root").segments.size(), 2u);
  EXPECT_EQ(Lv(vg, "root").segments[1].stripes[0], std::make_pair(std::string("pv0"), uint64_t{6}));
}

TEST(LvmMetadata, MapsLinearSegmentsToPhysicalVolumeBytes) {
  PvSpec pv0, pv1;
  pv1.uuid = std::string(32, 'B');
  pv1.pe_start = 192 << 10;
  LvmVolumeGroup vg = Parse(VgText("rhel", kExtent, {{"pv0", pv0}, {"pv1", pv1}},
                                   {{"root", {{0, 2, "pv0", 0}, {2, 3, "pv1", 6}, {5, 1, "pv0", 2}}}}));
  auto layout = LvmLayout(vg, Lv(vg, "root"));
  ASSERT_TRUE(layout.ok()) << layout.status().message();
  ASSERT_EQ(layout->size(), 3u);
  EXPECT_EQ((*layout)[0].lv_offset, 0u);
  EXPECT_EQ((*layout)[0].length, 2 * kExtent);
  EXPECT_EQ((*layout)[0].pv_uuid, pv0.uuid);
  EXPECT_EQ((*layout)[0].pv_offset, 1u << 20);
  EXPECT_EQ((*layout)[1].lv_offset, 2 * kExtent);
  EXPECT_EQ((*layout)[1].length, 3 * kExtent);
  EXPECT_EQ((*layout)[1].pv_uuid, pv1.uuid);
  EXPECT_EQ((*layout)[1].pv_offset, (192u << 10) + 6 * kExtent);
  EXPECT_EQ((*layout)[2].lv_offset, 5 * kExtent);
  EXPECT_EQ((*layout)[2].pv_offset, (1u << 20) + 2 * kExtent);
}

TEST(LvmMetadata, RefusesWhatIsNotLinearWithTheReason) {
  PvSpec pv0;
  SegSpec thin{0, 4, "", 0, "thin"};
  SegSpec raid{0, 4, "pv0", 0, "raid1"};
  SegSpec striped{0, 4, "pv0", 0, "striped", 2};
  LvmVolumeGroup vg = Parse(VgText("rhel", kExtent, {{"pv0", pv0}},
                                   {{"thin", {thin}}, {"mirror", {raid}}, {"wide", {striped}},
                                    {"gap", {{0, 1, "pv0", 0}, {2, 1, "pv0", 1}}},
                                    {"beyond", {{0, 4, "pv0", 14}}},
                                    {"lost", {{0, 1, "pv9", 0}}}}));
  auto msg = [&](const std::string& name) {
    auto r = LvmLayout(vg, Lv(vg, name));
    EXPECT_FALSE(r.ok()) << name;
    return r.status().message();
  };
  EXPECT_NE(msg("thin").find("segment 1 is of type 'thin'"), std::string::npos) << msg("thin");
  EXPECT_NE(msg("mirror").find("type 'raid1'"), std::string::npos);
  EXPECT_NE(msg("wide").find("striped over 2"), std::string::npos) << msg("wide");
  EXPECT_NE(msg("gap").find("segment 2 covers extents 2+1, expected to start at 1"), std::string::npos)
      << msg("gap");
  EXPECT_NE(msg("beyond").find("uses extents 14+4 of pv0, which has 15"), std::string::npos)
      << msg("beyond");
  EXPECT_NE(msg("lost").find("'pv9'"), std::string::npos);
}

TEST(LvmMetadata, RejectsDamagedText) {
  for (const char* bad : {"rhel {\n\tseqno = 1\n", "rhel {\n\tseqno = \n}\n", "rhel { x = [1, }",
                          "vg { id = \"x\" }", "= 3", "rhel {\n\tid = \"unterminated\n}"}) {
    auto vg = ParseLvmMetadata(bad);
    EXPECT_FALSE(vg.ok()) << bad;
    EXPECT_EQ(vg.status().code(), StatusCode::kCorruption) << bad;
  }
}

TEST(LvmMetadata, NamesVolumesLikeDeviceMapper) {
  EXPECT_EQ(DeviceMapperName("rhel", "root"), "rhel-root");
  EXPECT_EQ(DeviceMapperName("vg-data", "lv-1"), "vg--data-lv--1");
}

}  // namespace
}  // namespace offhost::mount::internal
