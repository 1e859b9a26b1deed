// VolumeDevice: one guest volume (a partition, a whole disk or an LVM logical volume) as a
// BlockDevice of its own, so every file-system reader sees offset 0 as the start of its file
// system, whatever table or volume manager put it where.
//
// A volume is an ordered list of pieces, each a stretch of one guest disk: one piece for a
// partition or a whole disk, one per segment for a logical volume (an LV grown by lvextend is
// usually several stretches of its PV, not necessarily in order).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "offhost/common/block_device.h"

namespace offhost::mount::internal {

struct VolumePiece {
  uint64_t volume_offset = 0;  // where the piece starts in the volume
  uint64_t length = 0;
  BlockDevice* disk = nullptr;  // the guest disk that holds it (not owned)
  std::string disk_name;        // "vda"
  uint64_t disk_offset = 0;     // where the piece starts on that disk
};

// A stretch of volume bytes as it lies on a disk.
struct DiskRange {
  uint64_t volume_offset = 0;
  uint64_t length = 0;
  const VolumePiece* piece = nullptr;
  uint64_t disk_offset = 0;
};

class VolumeDevice final : public BlockDevice {
 public:
  // Pieces must be contiguous from volume offset 0, each non-empty and inside its disk;
  // InvalidArgument otherwise (a damaged table or LVM metadata, said in `what`).
  static Result<std::unique_ptr<VolumeDevice>> Make(std::string description,
                                                     std::vector<VolumePiece> pieces);

  uint64_t size() const override { return size_; }
  std::string description() const override { return description_; }
  // Reads from the disks the pieces lie on; safe from several threads, like the disks.
  Status Read(std::span<const ReadRequest> requests) override;
  // The allocation map of the disk under the piece holding `offset` (so holes of a thin LUN
  // under a logical volume are not read), up to that piece's end.
  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override;
  // The first piece's disk's constraints: pieces start on extent boundaries (MiB-aligned).
  BlockSizeConstraints block_size() const override { return pieces_.front().disk->block_size(); }

  const std::vector<VolumePiece>& pieces() const { return pieces_; }
  // [offset, offset+length) of the volume, split where it crosses from one piece to another.
  // InvalidArgument when the range reaches past the volume's end.
  Result<std::vector<DiskRange>> MapToDisks(uint64_t offset, uint64_t length) const;

 private:
  VolumeDevice(std::string description, std::vector<VolumePiece> pieces, uint64_t size)
      : description_(std::move(description)), pieces_(std::move(pieces)), size_(size) {}

  std::string description_;
  std::vector<VolumePiece> pieces_;
  uint64_t size_;
};

}  // namespace offhost::mount::internal
