#include "volume_device.h"

#include <algorithm>
#include <map>
#include <memory>

namespace offhost::mount::internal {

Result<std::unique_ptr<VolumeDevice>> VolumeDevice::Make(std::string description,
                                                         std::vector<VolumePiece> pieces) {
  uint64_t next = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const VolumePiece& p = pieces[i];
    std::string which = description + " piece " + std::to_string(i + 1);
    if (!p.disk) return Status::InvalidArgument(which + " has no disk");
    if (p.length == 0) return Status::InvalidArgument(which + " is empty");
    if (p.volume_offset != next) {
      return Status::InvalidArgument(which + " starts at volume byte " +
                                     std::to_string(p.volume_offset) + ", expected " +
                                     std::to_string(next) + " (pieces must be contiguous)");
    }
    if (p.disk_offset > p.disk->size() || p.length > p.disk->size() - p.disk_offset) {
      return Status::InvalidArgument(which + " (bytes " + std::to_string(p.disk_offset) + "+" +
                                     std::to_string(p.length) + ") reaches past the end of disk " +
                                     p.disk_name + " (" + std::to_string(p.disk->size()) +
                                     " bytes)");
    }
    next += p.length;
  }
  if (pieces.empty()) return Status::InvalidArgument(description + " has no pieces");
  return std::unique_ptr<VolumeDevice>(
      new VolumeDevice(std::move(description), std::move(pieces), next));
}

Result<std::vector<DiskRange>> VolumeDevice::MapToDisks(uint64_t offset, uint64_t length) const {
  if (offset > size_ || length > size_ - offset) {
    return Status::InvalidArgument("bytes " + std::to_string(offset) + "+" +
                                   std::to_string(length) + " are past the end of " + description_ +
                                   " (" + std::to_string(size_) + " bytes)");
  }
  std::vector<DiskRange> out;
  // The first piece whose end is past offset; pieces are sorted and contiguous.
  auto it = std::upper_bound(
      pieces_.begin(), pieces_.end(), offset,
      [](uint64_t off, const VolumePiece& p) { return off < p.volume_offset + p.length; });
  for (; length > 0 && it != pieces_.end(); ++it) {
    uint64_t within = offset - it->volume_offset;
    uint64_t n = std::min(length, it->length - within);
    out.push_back({offset, n, &*it, it->disk_offset + within});
    offset += n;
    length -= n;
  }
  return out;
}

Status VolumeDevice::Read(std::span<const ReadRequest> requests) {
  // One batch per disk, so a disk that reads requests in parallel still gets them together.
  std::map<BlockDevice*, std::vector<ReadRequest>> per_disk;
  for (const auto& r : requests) {
    OFFHOST_ASSIGN_OR_RETURN(auto ranges, MapToDisks(r.offset, r.buffer.size()));
    for (const auto& d : ranges) {
      per_disk[d.piece->disk].push_back(
          {d.disk_offset, r.buffer.subspan(d.volume_offset - r.offset, d.length)});
    }
  }
  for (auto& [disk, reqs] : per_disk) {
    Status st = disk->Read(reqs);
    if (!st.ok()) return st.WithContext("read " + description_);
  }
  return Status::OK();
}

Result<std::vector<Extent>> VolumeDevice::Extents(uint64_t offset, uint64_t length) {
  length = std::min(length, size_ - std::min(offset, size_));
  if (length == 0) return std::vector<Extent>{};
  OFFHOST_ASSIGN_OR_RETURN(auto ranges, MapToDisks(offset, length));
  const DiskRange& r = ranges.front();
  OFFHOST_ASSIGN_OR_RETURN(auto disk_extents, r.piece->disk->Extents(r.disk_offset, r.length));
  std::vector<Extent> out;
  for (const auto& e : disk_extents) {
    // Clip to the range asked: a disk's map may start before or run past the piece.
    uint64_t begin = std::max(e.offset, r.disk_offset);
    uint64_t end = std::min(e.offset + e.length, r.disk_offset + r.length);
    if (begin >= end) continue;
    out.push_back({r.volume_offset + (begin - r.disk_offset), end - begin, e.type});
  }
  if (out.empty() || out.front().offset != offset) {
    return Status::IOError("the allocation map of " + r.piece->disk->description() +
                           " does not cover byte " + std::to_string(r.disk_offset));
  }
  return out;
}

}  // namespace offhost::mount::internal
