#include "offhost/mount/logical_volumes.h"

#include "volume_discovery.h"

namespace offhost::mount {
namespace {

// The LV's bytes, with the disk they lie on kept alive as long as they are.
class LogicalVolumeDevice final : public BlockDevice {
 public:
  LogicalVolumeDevice(std::shared_ptr<BlockDevice> disk,
                      std::unique_ptr<internal::VolumeDevice> volume)
      : disk_(std::move(disk)), volume_(std::move(volume)) {}

  uint64_t size() const override { return volume_->size(); }
  std::string description() const override {
    return volume_->description() + " on " + disk_->description();
  }
  BlockSizeConstraints block_size() const override { return volume_->block_size(); }
  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override {
    return volume_->Extents(offset, length);
  }
  Status Read(std::span<const ReadRequest> requests) override { return volume_->Read(requests); }

 private:
  std::shared_ptr<BlockDevice> disk_;
  std::unique_ptr<internal::VolumeDevice> volume_;
};

std::string Unreadable(const internal::FoundVolume& v) {
  if (v.device) return "";
  // "not indexed: logical volume LV of volume group VG: <reason>" — keep the reason.
  const std::string& why = v.info.not_indexed;
  auto colon = why.find(": ", why.find("volume group "));
  return colon == std::string::npos ? why : why.substr(colon + 2);
}

}  // namespace

Result<std::vector<LogicalVolumeInfo>> ListLogicalVolumes(BlockDevice& disk) {
  OFFHOST_ASSIGN_OR_RETURN(auto volumes, internal::DiscoverVolumes({{"disk", &disk}}));
  std::vector<LogicalVolumeInfo> out;
  for (const auto& v : volumes) {
    if (v.lv.empty()) continue;
    out.push_back({v.vg, v.lv, v.info.length, Unreadable(v)});
  }
  return out;
}

Result<std::unique_ptr<BlockDevice>> OpenLogicalVolume(std::shared_ptr<BlockDevice> disk,
                                                       const std::string& vg,
                                                       const std::string& lv) {
  OFFHOST_ASSIGN_OR_RETURN(auto volumes, internal::DiscoverVolumes({{"disk", disk.get()}}));
  std::string known;
  for (auto& v : volumes) {
    if (v.lv.empty()) continue;
    if (v.vg == vg && v.lv == lv) {
      if (!v.device) {
        return Status::NotSupported("logical volume " + vg + "/" + lv + " on " +
                                    disk->description() + " cannot be read: " + Unreadable(v));
      }
      return std::unique_ptr<BlockDevice>(
          new LogicalVolumeDevice(std::move(disk), std::move(v.device)));
    }
    known += (known.empty() ? "" : ", ") + v.vg + "/" + v.lv;
  }
  return Status::NotFound(
      "no logical volume " + vg + "/" + lv + " on " + disk->description() +
      (known.empty() ? " (it holds no LVM2 volume group)" : " (it has: " + known + ")") +
      "; `offhost discover` lists them");
}

}  // namespace offhost::mount
