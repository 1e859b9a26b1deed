// iSCSI URIs and login identity: passwords never shown, the LUN's identity without the user,
// and the initiator name taken from open-iscsi's file before the configured one.
#include <gtest/gtest.h>

#include <fstream>

#include "offhost/snapshot-drivers/iscsi_block_device.h"
#include "test_util.h"

namespace offhost::snapshot_drivers {
namespace {

TEST(IscsiUri, MasksPasswordsInEitherForm) {
  EXPECT_EQ(MaskIscsiUri("iscsi://backup%s3cret@10.0.0.5/iqn.2001-05.com.example:t/1"),
            "iscsi://backup%***@10.0.0.5/iqn.2001-05.com.example:t/1");
  EXPECT_EQ(MaskIscsiUri("iscsi://backup:s3cret@10.0.0.5:3260/iqn.x:t/1#vg/lv"),
            "iscsi://backup:***@10.0.0.5:3260/iqn.x:t/1#vg/lv");
  EXPECT_EQ(MaskIscsiUri("iscsi://backup@10.0.0.5/iqn.x:t/1"), "iscsi://backup@10.0.0.5/iqn.x:t/1");
  EXPECT_EQ(MaskIscsiUri("iscsi://10.0.0.5/iqn.x:t/1"), "iscsi://10.0.0.5/iqn.x:t/1");
}

TEST(IscsiUri, IdentityLeavesOutWhoLogsIn) {
  EXPECT_EQ(IscsiUriWithoutUser("iscsi://backup%s3cret@10.0.0.5/iqn.x:t/1"),
            "iscsi://10.0.0.5/iqn.x:t/1");
  EXPECT_EQ(IscsiUriWithoutUser("iscsi://10.0.0.5/iqn.x:t/1"), "iscsi://10.0.0.5/iqn.x:t/1");
  EXPECT_TRUE(IsIscsiUri("iscsi://10.0.0.5/iqn.x:t/1"));
  EXPECT_FALSE(IsIscsiUri("nbd://10.0.0.5/x"));
}

TEST(IscsiInitiator, OpenIscsiFileFirstThenConfigThenDefault) {
  offhost::testing::TempDir dir;
  IscsiCredentials c;
  c.initiator_name = "iqn.2026-11.example:configured";
  c.initiator_name_file = dir / "initiatorname.iscsi";
  std::ofstream(c.initiator_name_file) << "## DO NOT EDIT\n#InitiatorName=iqn.commented:out\n"
                                          "InitiatorName=iqn.1993-08.org.debian:01:abc123\n";
  EXPECT_EQ(*ResolveInitiatorName(c), "iqn.1993-08.org.debian:01:abc123");

  std::ofstream(c.initiator_name_file) << "# nothing here\n";
  auto broken = ResolveInitiatorName(c);
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("no InitiatorName= line"), std::string::npos);

  c.initiator_name_file = dir / "absent";
  EXPECT_EQ(*ResolveInitiatorName(c), "iqn.2026-11.example:configured");
  c.initiator_name.clear();
  EXPECT_EQ(*ResolveInitiatorName(c), DefaultInitiatorName());
  EXPECT_TRUE(DefaultInitiatorName().starts_with("iqn.2026-11.org.offhost:"));
}

TEST(IscsiInitiator, CredentialsComeFromDriverSettings) {
  IscsiCredentials c = IscsiCredentialsFromSettings({{"initiator-name", "iqn.a:b"},
                                                     {"initiator-name-file", "/x"},
                                                     {"chap-user", "u"},
                                                     {"chap-secret", "s"},
                                                     {"target-chap-user", "tu"},
                                                     {"target-chap-secret", "ts"},
                                                     {"disk.sda", "iscsi://h/t/1"}});
  EXPECT_EQ(c.initiator_name, "iqn.a:b");
  EXPECT_EQ(c.initiator_name_file, "/x");
  EXPECT_EQ(c.chap_user, "u");
  EXPECT_EQ(c.chap_secret, "s");
  EXPECT_EQ(c.target_chap_user, "tu");
  EXPECT_EQ(c.target_chap_secret, "ts");
  EXPECT_EQ(IscsiCredentialsFromSettings({}).initiator_name_file, "/etc/iscsi/initiatorname.iscsi");
}

// Mutual CHAP answers our own CHAP login; asked for without it, the target would go
// unchecked while the operator believes otherwise. Refused before any connection.
TEST(IscsiInitiator, MutualChapWithoutChapIsRefused) {
  IscsiOpenOptions o;
  o.credentials.initiator_name_file = "/nonexistent";
  o.credentials.target_chap_user = "array";
  o.credentials.target_chap_secret = "s";
  auto dev = OpenIscsi("iscsi://127.0.0.1:1/iqn.2026-11.test:t/1", o);
  ASSERT_FALSE(dev.ok());
  EXPECT_EQ(dev.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(dev.status().message().find("mutual CHAP"), std::string::npos)
      << dev.status().message();
}

}  // namespace
}  // namespace offhost::snapshot_drivers
