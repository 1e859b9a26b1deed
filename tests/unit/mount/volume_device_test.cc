// VolumeDevice: a volume's bytes gathered from stretches of guest disks (partitions, LV segments).
#include "volume_device.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace offhost::mount::internal {
namespace {

using offhost::testing::MemoryDisk;
using offhost::testing::RandomBytes;

std::string ReadAll(BlockDevice& dev, uint64_t off, size_t len) {
  std::string out(len, '\0');
  ReadRequest req{off, {out.data(), out.size()}};
  Status st = dev.Read({&req, 1});
  EXPECT_TRUE(st.ok()) << st.message();
  return out;
}

TEST(VolumeDevice, ReadsSegmentsOutOfOrderAndAcrossDisks) {
  MemoryDisk a(1 << 20), b(1 << 20);
  a.Put(0, RandomBytes(1 << 20, 1));
  b.Put(0, RandomBytes(1 << 20, 2));
  // volume [0,100) = a[5000,5100); [100,400) = b[10,310); [400,1400) = a[100,1100)
  auto dev = VolumeDevice::Make("lv", {{0, 100, &a, "vda", 5000},
                                       {100, 300, &b, "vdb", 10},
                                       {400, 1000, &a, "vda", 100}});
  ASSERT_TRUE(dev.ok()) << dev.status().message();
  ASSERT_EQ((*dev)->size(), 1400u);
  std::string want = a.bytes().substr(5000, 100) + b.bytes().substr(10, 300) + a.bytes().substr(100, 1000);
  EXPECT_EQ(ReadAll(**dev, 0, 1400), want);
  EXPECT_EQ(ReadAll(**dev, 99, 302), want.substr(99, 302));  // crosses two boundaries
  EXPECT_EQ(ReadAll(**dev, 1399, 1), want.substr(1399, 1));

  // Several requests at once, each split where it crosses a piece.
  std::string r1(150, '\0'), r2(50, '\0');
  ReadRequest reqs[2] = {{50, {r1.data(), r1.size()}}, {390, {r2.data(), r2.size()}}};
  ASSERT_TRUE((*dev)->Read(reqs).ok());
  EXPECT_EQ(r1, want.substr(50, 150));
  EXPECT_EQ(r2, want.substr(390, 50));

  std::string past(2, '\0');
  ReadRequest bad{1399, {past.data(), past.size()}};
  EXPECT_EQ((*dev)->Read({&bad, 1}).code(), StatusCode::kInvalidArgument);
}

TEST(VolumeDevice, MapsVolumeRangesToDiskRanges) {
  MemoryDisk a(1 << 20);
  auto dev = VolumeDevice::Make("lv", {{0, 4096, &a, "vda", 65536}, {4096, 8192, &a, "vda", 8192}});
  ASSERT_TRUE(dev.ok());
  auto r = (*dev)->MapToDisks(4000, 200);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].volume_offset, 4000u);
  EXPECT_EQ((*r)[0].length, 96u);
  EXPECT_EQ((*r)[0].disk_offset, 65536u + 4000);
  EXPECT_EQ((*r)[1].volume_offset, 4096u);
  EXPECT_EQ((*r)[1].length, 104u);
  EXPECT_EQ((*r)[1].disk_offset, 8192u);
  EXPECT_EQ((*r)[1].piece->disk_name, "vda");
  EXPECT_TRUE((*dev)->MapToDisks(0, 12288).ok());
  EXPECT_FALSE((*dev)->MapToDisks(12000, 289).ok());
  auto empty = (*dev)->MapToDisks(12288, 0);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(VolumeDevice, RefusesGapsEmptyPiecesAndPiecesPastTheDisk) {
  MemoryDisk a(1 << 20);
  EXPECT_FALSE(VolumeDevice::Make("lv", {}).ok());
  EXPECT_FALSE(VolumeDevice::Make("lv", {{0, 100, &a, "vda", 0}, {101, 10, &a, "vda", 0}}).ok());
  EXPECT_FALSE(VolumeDevice::Make("lv", {{0, 0, &a, "vda", 0}}).ok());
  auto past = VolumeDevice::Make("lv", {{0, 100, &a, "vda", (1 << 20) - 99}});
  ASSERT_FALSE(past.ok());
  EXPECT_NE(past.status().message().find("past the end of disk vda"), std::string::npos);
  EXPECT_FALSE(VolumeDevice::Make("lv", {{0, 100, nullptr, "vda", 0}}).ok());
}

}  // namespace
}  // namespace offhost::mount::internal
