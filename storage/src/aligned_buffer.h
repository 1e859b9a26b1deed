// Reusable memory for direct I/O: block-aligned, and in huge pages when large.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>

#include "offhost/storage/chunk_codec.h"  // kDirectAlign

namespace offhost::storage {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  // At least `n` bytes, kept for the next call; the contents are not kept when it grows.
  // Null when out of memory.
  char* Reserve(size_t n) {
    if (n <= capacity_) return data_;
    std::free(data_);
    data_ = nullptr;
    capacity_ = 0;
    // Huge pages where the kernel has them: one fault instead of 512 for each 2 MiB, which on a
    // short incremental backup is a tenth of its CPU time.
    // Only the whole huge pages within `n`: the last part of a 4 MiB chunk's encoding (header
    // and compression bound) then costs a few small pages, not another huge one.
    constexpr size_t kHuge = 2u << 20;
    const size_t align = n >= kHuge ? kHuge : kDirectAlign;
    const size_t huge = n / kHuge * kHuge;
    n = (n + align - 1) / align * align;
    void* p = nullptr;
    if (::posix_memalign(&p, align, n) != 0) return nullptr;
    if (huge > 0) ::madvise(p, huge, MADV_HUGEPAGE);
    data_ = static_cast<char*>(p);
    capacity_ = n;
    return data_;
  }

 private:
  char* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace offhost::storage
