#include "domain_xml.h"

#include <gtest/gtest.h>

namespace offhost::snapshot_drivers {
namespace {

std::string Domain(const std::string& devices) {
  return "<domain type='kvm'><name>web01</name><devices>" + devices + "</devices></domain>";
}

const char kQcow2Disk[] =
    "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
    "<source file='/var/lib/libvirt/images/web01.qcow2'/><target dev='vda' bus='virtio'/></disk>";

TEST(DomainXml, DisksWithWhyEachIsLeftOut) {
  auto disks = ParseDomainDisks(
      Domain(std::string(kQcow2Disk) +
             "<disk type='file' device='cdrom'><target dev='sda'/></disk>"
             "<disk type='block' device='lun'><source dev='/dev/sdx'/><target dev='sdb'/></disk>"
             "<disk type='network' device='disk'><source protocol='rbd' name='pool/img'/>"
             "<target dev='vdb'/></disk>"));
  ASSERT_TRUE(disks.ok()) << disks.status().message();
  ASSERT_EQ(disks->size(), 4u);
  EXPECT_EQ((*disks)[0].target, "vda");
  EXPECT_EQ((*disks)[0].format, "qcow2");
  EXPECT_EQ((*disks)[0].source, "/var/lib/libvirt/images/web01.qcow2");
  EXPECT_EQ((*disks)[0].exclude, "");
  EXPECT_NE((*disks)[1].exclude.find("removable"), std::string::npos);
  EXPECT_NE((*disks)[2].exclude.find("pass-through LUN"), std::string::npos);
  EXPECT_NE((*disks)[3].exclude.find("network disk (rbd)"), std::string::npos);
}

TEST(DomainXml, BrokenXmlIsRefused) { EXPECT_FALSE(ParseDomainDisks("<domain><devices>").ok()); }

TEST(DomainXml, GuestAgentChannelIsFoundByItsTargetName) {
  EXPECT_FALSE(HasGuestAgentChannel(Domain(kQcow2Disk)));
  EXPECT_FALSE(HasGuestAgentChannel(Domain(
      "<channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>")));
  EXPECT_TRUE(HasGuestAgentChannel(
      Domain(std::string(kQcow2Disk) +
             "<channel type='unix'><source mode='bind'/>"
             "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>")));
  EXPECT_FALSE(HasGuestAgentChannel("not xml"));
}

TEST(DomainXml, CheckpointBitmapDisks) {
  auto disks = CheckpointBitmapDisks(
      "<domaincheckpoint><name>c1</name><disks><disk name='vda' checkpoint='bitmap'/>"
      "<disk name='vdb' checkpoint='no'/></disks></domaincheckpoint>");
  EXPECT_EQ(disks, std::vector<std::string>{"vda"});
}

}  // namespace
}  // namespace offhost::snapshot_drivers
