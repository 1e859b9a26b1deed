// BlockDevice: the one way every module reads a disk — a live snapshot export over NBD or
// iSCSI, a disk image, or (later) a stored backup. Implementations must be safe to call from
// several threads at once.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "offhost/common/status.h"

namespace offhost {

enum class ExtentType : uint8_t {
  kData = 0,  // allocated, must be read
  kZero = 1,  // allocated but reads as zeroes: never read
  kHole = 2,  // unallocated (reads as zeroes): never read
};

struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  ExtentType type = ExtentType::kData;
};

struct ReadRequest {
  uint64_t offset = 0;
  std::span<char> buffer;  // reads buffer.size() bytes at offset
};

struct BlockSizeConstraints {
  uint32_t minimum = 1;                   // requests are aligned to this
  uint32_t preferred = 4096;              // a good request granularity
  uint32_t maximum = 32u * 1024 * 1024;  // never send a larger request
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  // Size in bytes.
  virtual uint64_t size() const = 0;
  // A printable name for messages (URIs with credentials masked).
  virtual std::string description() const = 0;
  virtual BlockSizeConstraints block_size() const { return {}; }

  // Allocation map starting at `offset`, covering at least one byte and at most `length`
  // bytes; the caller loops. Devices without allocation information return one data extent.
  virtual Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) {
    return std::vector<Extent>{{offset, length, ExtentType::kData}};
  }

  // Changed-block tracking: whether DirtyExtents() knows what changed since a checkpoint.
  virtual bool has_dirty_map() const { return false; }
  // Like Extents(), over the dirty map: kData = changed since the checkpoint, kHole = unchanged.
  virtual Result<std::vector<Extent>> DirtyExtents(uint64_t offset, uint64_t length) {
    return std::vector<Extent>{{offset, length, ExtentType::kData}};
  }

  // Reads all requests, possibly concurrently; returns the first error.
  virtual Status Read(std::span<const ReadRequest> requests) = 0;

  // Writing is only for restore targets. Production disks are always opened read-only.
  virtual bool writable() const { return false; }
  virtual Status Write(uint64_t /*offset*/, std::span<const char> /*data*/) {
    return Status::NotSupported(description() + " is read-only");
  }
  // Makes [offset, offset+length) read as zeroes, punching a hole where the target can.
  virtual Status WriteZeroes(uint64_t offset, uint64_t length);
  virtual Status Flush() { return Status::OK(); }
};

}  // namespace offhost
