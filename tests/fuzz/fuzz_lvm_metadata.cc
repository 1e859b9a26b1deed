// libFuzzer target: LVM2 labels, metadata areas and metadata text come from guest disks, which
// offhost must read whatever they hold. Parsing never crashes; a layout it accepts lies inside
// its physical volumes, contiguous from LV byte 0.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "lvm_metadata.h"

using namespace offhost;
using namespace offhost::mount::internal;

namespace {

class Bytes : public BlockDevice {
 public:
  explicit Bytes(std::string data) : data_(std::move(data)) {}
  uint64_t size() const override { return data_.size(); }
  std::string description() const override { return "fuzz input"; }
  Status Read(std::span<const ReadRequest> requests) override {
    for (const auto& r : requests) {
      if (r.offset > data_.size() || r.buffer.size() > data_.size() - r.offset) std::abort();
      std::memcpy(r.buffer.data(), data_.data() + r.offset, r.buffer.size());
    }
    return Status::OK();
  }

 private:
  std::string data_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  // As a disk: label and metadata area (reads must stay inside the device).
  Bytes disk(input);
  auto label = ReadLvmLabel(disk);
  if (label.ok()) ReadLvmMetadataText(disk, *label).status().IgnoreError();
  // As metadata text.
  auto vg = ParseLvmMetadata(input);
  if (!vg.ok()) return 0;
  for (const auto& lv : vg->lvs) {
    auto layout = LvmLayout(*vg, lv);
    if (!layout.ok()) continue;
    uint64_t next = 0;
    for (const auto& p : *layout) {
      if (p.lv_offset != next || p.length == 0) std::abort();
      next += p.length;
    }
  }
  return 0;
}
