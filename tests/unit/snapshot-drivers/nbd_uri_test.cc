#include <gtest/gtest.h>

#include "offhost/snapshot-drivers/nbd_block_device.h"

namespace offhost::snapshot_drivers {
namespace {

TEST(NbdUri, AcceptsNbdSchemesOnly) {
  EXPECT_TRUE(IsNbdUri("nbd://127.0.0.1:10809/vda"));
  EXPECT_TRUE(IsNbdUri("nbds://proxy/vda"));
  EXPECT_TRUE(IsNbdUri("nbd+unix:///vda?socket=/run/x.sock"));
  EXPECT_TRUE(IsNbdUri("nbds+unix:///?socket=/run/x.sock"));
  EXPECT_FALSE(IsNbdUri("http://host/vda"));
  EXPECT_FALSE(IsNbdUri("/var/lib/images/vda.qcow2"));
}

TEST(NbdUri, MasksPasswords) {
  EXPECT_EQ(MaskUri("nbds://alice:s3cret@host/vda"), "nbds://alice:***@host/vda");
  EXPECT_EQ(MaskUri("nbd://alice@host/vda"), "nbd://alice@host/vda");
  EXPECT_EQ(MaskUri("nbd+unix:///vda?socket=/a@b"), "nbd+unix:///vda?socket=/a@b");
}

TEST(NbdUri, MalformedUriIsRefusedWithTheAcceptedForms) {
  auto r = OpenNbd("http://user:pw@example/vda");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("nbd+unix:///EXPORT?socket=PATH"), std::string::npos);
  EXPECT_EQ(r.status().message().find("pw"), std::string::npos);
}

TEST(NbdUri, UnreachableExportIsUnavailable) {
  auto r = OpenNbd("nbd+unix:///?socket=/nonexistent/offhost.sock");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("/nonexistent/offhost.sock"), std::string::npos);
}

}  // namespace
}  // namespace offhost::snapshot_drivers
