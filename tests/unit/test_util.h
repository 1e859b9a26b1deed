// Helpers shared by unit tests: temporary directories and an in-memory BlockDevice.
#pragma once

#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "offhost/common/block_device.h"

namespace offhost::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "offhost-ut.XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// A disk in memory with an allocation map; it counts the bytes it was asked to read.
class MemoryDisk : public BlockDevice {
 public:
  explicit MemoryDisk(uint64_t size) : data_(size, '\0') {
    extents_.push_back({0, size, ExtentType::kHole});
  }

  // A copy with the same bytes, allocation and dirty maps and fresh counters.
  MemoryDisk(const MemoryDisk& o)
      : BlockDevice(), data_(o.data_), extents_(o.extents_), dirty_map_(o.dirty_map_),
        dirty_(o.dirty_) {}

  // Writes data and marks it allocated.
  void Put(uint64_t offset, const std::string& bytes) {
    std::memcpy(data_.data() + offset, bytes.data(), bytes.size());
    Mark(offset, bytes.size(), ExtentType::kData);
  }
  void Mark(uint64_t offset, uint64_t length, ExtentType type) {
    std::vector<Extent> out;
    uint64_t end = offset + length;
    for (const auto& e : extents_) {
      uint64_t e_end = e.offset + e.length;
      if (e_end <= offset || e.offset >= end) {
        out.push_back(e);
        continue;
      }
      if (e.offset < offset) out.push_back({e.offset, offset - e.offset, e.type});
      if (e_end > end) out.push_back({end, e_end - end, e.type});
    }
    out.push_back({offset, length, type});
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.offset < b.offset; });
    extents_ = out;
  }
  void FailReadsAfter(uint64_t bytes) { fail_after_ = bytes; }
  // Changed-block tracking: these ranges are dirty, the rest clean.
  void SetDirty(std::vector<Extent> dirty) {
    dirty_map_ = true;
    dirty_.clear();
    uint64_t pos = 0;
    for (const auto& d : dirty) {
      if (d.offset > pos) dirty_.push_back({pos, d.offset - pos, ExtentType::kHole});
      dirty_.push_back({d.offset, d.length, ExtentType::kData});
      pos = d.offset + d.length;
    }
    if (pos < size()) dirty_.push_back({pos, size() - pos, ExtentType::kHole});
  }
  bool has_dirty_map() const override { return dirty_map_; }
  Result<std::vector<Extent>> DirtyExtents(uint64_t offset, uint64_t length) override {
    std::vector<Extent> out;
    for (const auto& e : dirty_) {
      uint64_t s = std::max(e.offset, offset), t = std::min(e.offset + e.length, offset + length);
      if (s < t) out.push_back({s, t - s, e.type});
    }
    return out;
  }

  const std::string& bytes() const { return data_; }
  uint64_t bytes_read() const { return bytes_read_; }

  uint64_t size() const override { return data_.size(); }
  std::string description() const override { return "memory disk"; }
  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override {
    std::vector<Extent> out;
    for (const auto& e : extents_) {
      uint64_t s = std::max(e.offset, offset), t = std::min(e.offset + e.length, offset + length);
      if (s < t) out.push_back({s, t - s, e.type});
    }
    // Return at most two extents per call, like a server that answers in pieces.
    if (out.size() > 2) out.resize(2);
    return out;
  }
  Status Read(std::span<const ReadRequest> requests) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& r : requests) {
      if (bytes_read_ + r.buffer.size() > fail_after_) {
        return Status::IOError("memory disk: injected read failure at " + std::to_string(r.offset));
      }
      std::memcpy(r.buffer.data(), data_.data() + r.offset, r.buffer.size());
      bytes_read_ += r.buffer.size();
    }
    return Status::OK();
  }
  bool writable() const override { return true; }
  Status Write(uint64_t offset, std::span<const char> d) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::memcpy(data_.data() + offset, d.data(), d.size());
    return Status::OK();
  }

 private:
  std::string data_;
  std::vector<Extent> extents_;
  bool dirty_map_ = false;
  std::vector<Extent> dirty_;
  std::mutex mu_;
  uint64_t bytes_read_ = 0;
  uint64_t fail_after_ = UINT64_MAX;
};

}  // namespace offhost::testing
