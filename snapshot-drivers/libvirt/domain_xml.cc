#include "domain_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <memory>

namespace offhost::snapshot_drivers {
namespace {

std::string Attr(xmlNode* n, const char* name) {
  if (!n) return "";
  xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
  if (!v) return "";
  std::string s(reinterpret_cast<char*>(v));
  xmlFree(v);
  return s;
}

xmlNode* Child(xmlNode* n, const char* name) {
  for (xmlNode* c = n ? n->children : nullptr; c; c = c->next) {
    if (c->type == XML_ELEMENT_NODE &&
        xmlStrEqual(c->name, reinterpret_cast<const xmlChar*>(name))) {
      return c;
    }
  }
  return nullptr;
}

// Why a disk is left out, or "" when it can be backed up through the hypervisor.
std::string ExcludeReason(xmlNode* disk) {
  std::string device = Attr(disk, "device"), type = Attr(disk, "type");
  if (device == "cdrom" || device == "floppy") return device + ": removable medium, not backed up";
  if (device == "lun") return "pass-through LUN: back it up from the SAN (offhost --driver iscsi)";
  if (type == "network") {
    return "network disk (" + Attr(Child(disk, "source"), "protocol") +
           "): back it up from the storage side";
  }
  if (Child(disk, "shareable")) return "shareable disk: back it up from the storage side";
  if (Child(disk, "readonly")) return "read-only disk: not backed up";
  if (!Child(disk, "source")) return "no medium";
  return "";
}

using XmlDoc = std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)>;

XmlDoc ParseXml(const std::string& xml, const char* name) {
  return XmlDoc(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), name, nullptr,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING),
                xmlFreeDoc);
}

}  // namespace

Result<std::vector<DomainDisk>> ParseDomainDisks(const std::string& xml) {
  XmlDoc doc = ParseXml(xml, "domain.xml");
  if (!doc) return Status::InvalidArgument("libvirt returned a domain XML that does not parse");
  xmlNode* devices = Child(xmlDocGetRootElement(doc.get()), "devices");
  std::vector<DomainDisk> out;
  for (xmlNode* c = devices ? devices->children : nullptr; c; c = c->next) {
    if (c->type != XML_ELEMENT_NODE || !xmlStrEqual(c->name, BAD_CAST "disk")) continue;
    DomainDisk d;
    d.target = Attr(Child(c, "target"), "dev");
    d.format = Attr(Child(c, "driver"), "type");
    d.exclude = ExcludeReason(c);
    xmlNode* src = Child(c, "source");
    for (const char* attr : {"file", "dev", "volume", "name"}) {
      if (d.source.empty()) d.source = Attr(src, attr);
    }
    if (!d.target.empty()) out.push_back(d);
  }
  return out;
}

std::vector<std::string> CheckpointBitmapDisks(const std::string& xml) {
  std::vector<std::string> out;
  XmlDoc doc = ParseXml(xml, "checkpoint.xml");
  if (!doc) return out;
  xmlNode* disks = Child(xmlDocGetRootElement(doc.get()), "disks");
  for (xmlNode* c = disks ? disks->children : nullptr; c; c = c->next) {
    if (c->type != XML_ELEMENT_NODE || !xmlStrEqual(c->name, BAD_CAST "disk")) continue;
    if (Attr(c, "checkpoint") == "bitmap") out.push_back(Attr(c, "name"));
  }
  return out;
}

bool HasGuestAgentChannel(const std::string& xml) {
  XmlDoc doc = ParseXml(xml, "domain.xml");
  xmlNode* devices = doc ? Child(xmlDocGetRootElement(doc.get()), "devices") : nullptr;
  for (xmlNode* c = devices ? devices->children : nullptr; c; c = c->next) {
    if (c->type != XML_ELEMENT_NODE || !xmlStrEqual(c->name, BAD_CAST "channel")) continue;
    if (Attr(Child(c, "target"), "name") == "org.qemu.guest_agent.0") return true;
  }
  return false;
}

}  // namespace offhost::snapshot_drivers
