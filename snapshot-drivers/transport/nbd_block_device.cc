#include "offhost/snapshot-drivers/nbd_block_device.h"

#include <libnbd.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <vector>

namespace offhost::snapshot_drivers {
namespace {

constexpr uint64_t kBlockStatusWindow = 1ull << 30;  // servers cap one request at 32 bits

std::string NbdError() {
  const char* e = nbd_get_error();
  return e ? e : "unknown libnbd error";
}

struct HandleCloser {
  void operator()(nbd_handle* h) const { nbd_close(h); }
};
using HandlePtr = std::unique_ptr<nbd_handle, HandleCloser>;

class NbdBlockDevice final : public BlockDevice {
 public:
  NbdBlockDevice(HandlePtr h, std::string uri, const NbdOpenOptions& options)
      : h_(std::move(h)), uri_(std::move(uri)), options_(options) {}

  // A server that stopped answering would hold nbd_shutdown (it waits for the replies):
  // after a timeout the connection is simply closed.
  ~NbdBlockDevice() override {
    if (!timed_out_) nbd_shutdown(h_.get(), 0);
  }

  Status Init() {
    int64_t size = nbd_get_size(h_.get());
    if (size < 0) return Status::IOError("get size of NBD export " + uri_ + ": " + NbdError());
    size_ = static_cast<uint64_t>(size);
    int64_t mn = nbd_get_block_size(h_.get(), LIBNBD_SIZE_MINIMUM);
    int64_t pref = nbd_get_block_size(h_.get(), LIBNBD_SIZE_PREFERRED);
    int64_t mx = nbd_get_block_size(h_.get(), LIBNBD_SIZE_MAXIMUM);
    if (mn > 0) bs_.minimum = static_cast<uint32_t>(mn);
    if (pref > 0) bs_.preferred = static_cast<uint32_t>(pref);
    bs_.maximum = options_.max_request;
    if (mx > 0) bs_.maximum = std::min<uint32_t>(bs_.maximum, static_cast<uint32_t>(mx));
    // A request must stay a multiple of the minimum block size.
    bs_.maximum = std::max(bs_.minimum, bs_.maximum - bs_.maximum % bs_.minimum);
    has_allocation_ = nbd_can_meta_context(h_.get(), LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
    read_only_ = nbd_is_read_only(h_.get()) == 1;
    can_zero_ = nbd_can_zero(h_.get()) == 1;
    can_flush_ = nbd_can_flush(h_.get()) == 1;
    if (options_.writable && read_only_) {
      return Status::FailedPrecondition("NBD export " + uri_ +
                                        " is read-only; a restore target must be writable");
    }
    return Status::OK();
  }

  uint64_t size() const override { return size_; }
  std::string description() const override { return "NBD export " + uri_; }
  BlockSizeConstraints block_size() const override { return bs_; }
  bool writable() const override { return options_.writable && !read_only_; }

  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override {
    if (!has_allocation_) {
      length = std::min({length, kBlockStatusWindow, size_ - std::min(offset, size_)});
      return std::vector<Extent>{{offset, length, ExtentType::kData}};
    }
    return BlockStatus(LIBNBD_CONTEXT_BASE_ALLOCATION, offset, length, [](uint32_t flags) {
      // A hole without the zero flag has unknown contents (NBD spec):
      // only hole+zero may be skipped as unallocated.
      bool zero = flags & LIBNBD_STATE_ZERO, hole = flags & LIBNBD_STATE_HOLE;
      return zero && hole ? ExtentType::kHole : zero ? ExtentType::kZero : ExtentType::kData;
    });
  }

  bool has_dirty_map() const override { return !options_.dirty_bitmap.empty(); }

  Result<std::vector<Extent>> DirtyExtents(uint64_t offset, uint64_t length) override {
    if (!has_dirty_map()) return BlockDevice::DirtyExtents(offset, length);
    // In qemu:dirty-bitmap contexts, bit 0 set means "dirty".
    return BlockStatus(options_.dirty_bitmap, offset, length, [](uint32_t flags) {
      return (flags & 1) ? ExtentType::kData : ExtentType::kHole;
    });
  }

  Status CheckDirtyBitmap() {
    if (has_dirty_map() && nbd_can_meta_context(h_.get(), options_.dirty_bitmap.c_str()) != 1) {
      return Status::NotFound("NBD export " + uri_ + " does not offer the dirty bitmap '" +
                              options_.dirty_bitmap + "'");
    }
    return Status::OK();
  }

  Status Read(std::span<const ReadRequest> requests) override {
    struct Piece {
      uint64_t offset;
      char* buf;
      size_t len;
    };
    std::vector<Piece> pieces;
    for (const auto& r : requests) {
      for (size_t done = 0; done < r.buffer.size();) {
        size_t n = std::min<size_t>(bs_.maximum, r.buffer.size() - done);
        pieces.push_back({r.offset + done, r.buffer.data() + done, n});
        done += n;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (timed_out_) return TimeoutError("read", requests.empty() ? 0 : requests[0].offset);
    std::vector<int64_t> cookies;
    Status first;
    size_t next = 0;
    Clock::time_point progress = Clock::now();  // when a request last completed
    // Issue up to max_in_flight; on any error stop issuing but drain what is in flight, since
    // libnbd still owns those buffers.
    while ((first.ok() && next < pieces.size()) || !cookies.empty()) {
      while (first.ok() && next < pieces.size() &&
             static_cast<int>(cookies.size()) < options_.max_in_flight) {
        const Piece& p = pieces[next++];
        int64_t c = nbd_aio_pread(h_.get(), p.buf, p.len, p.offset,
                                  nbd_completion_callback{nullptr, nullptr, nullptr}, 0);
        if (c < 0) {
          first = ReadError(p.offset);
          break;
        }
        cookies.push_back(c);
      }
      if (cookies.empty()) break;
      if (nbd_poll(h_.get(), PollMs(progress)) < 0) {
        if (first.ok()) first = ReadError(pieces[next - 1].offset);
        if (nbd_aio_is_dead(h_.get()) || nbd_aio_is_closed(h_.get())) break;
      }
      size_t before = cookies.size();
      Retire(&cookies, &first, pieces[next - 1].offset);
      if (cookies.size() < before) {
        progress = Clock::now();
      } else if (Expired(progress)) {
        // libnbd keeps pointers into the caller's buffers for the requests in flight: the
        // handle is never polled again, so they are never written once this returns.
        timed_out_ = true;
        return TimeoutError("read", pieces[next - 1].offset);
      }
      if (nbd_aio_is_dead(h_.get())) {
        if (first.ok()) first = ReadError(pieces[next - 1].offset);
        break;
      }
    }
    return first;
  }

  Status Write(uint64_t offset, std::span<const char> data) override {
    if (!writable()) return BlockDevice::Write(offset, data);
    // After a timeout the handle is never run again (it still holds buffers of the reads).
    if (timed_out_) return TimeoutError("read", offset);
    for (size_t done = 0; done < data.size();) {
      size_t n = std::min<size_t>(bs_.maximum, data.size() - done);
      if (nbd_pwrite(h_.get(), data.data() + done, n, offset + done, 0) < 0) {
        return Status::IOError("write to NBD export " + uri_ + " at offset " +
                               std::to_string(offset + done) + ": " + NbdError());
      }
      done += n;
    }
    return Status::OK();
  }

  Status WriteZeroes(uint64_t offset, uint64_t length) override {
    if (!can_zero_) return BlockDevice::WriteZeroes(offset, length);
    if (timed_out_) return TimeoutError("read", offset);
    while (length > 0) {
      uint64_t n = std::min<uint64_t>(length, kBlockStatusWindow);
      if (nbd_zero(h_.get(), n, offset, 0) < 0) {
        return Status::IOError("zero NBD export " + uri_ + " at offset " + std::to_string(offset) +
                               ": " + NbdError());
      }
      offset += n;
      length -= n;
    }
    return Status::OK();
  }

  Status Flush() override {
    if (timed_out_) return TimeoutError("read", 0);
    if (can_flush_ && writable() && nbd_flush(h_.get(), 0) < 0) {
      return Status::IOError("flush NBD export " + uri_ + ": " + NbdError());
    }
    return Status::OK();
  }

 private:
  static std::string Hint() {
    return "; the export may have stopped or disconnected — check it and run the backup again";
  }

  template <typename Classify>
  Result<std::vector<Extent>> BlockStatus(const std::string& context, uint64_t offset,
                                          uint64_t length, Classify classify) {
    length = std::min({length, kBlockStatusWindow, size_ - std::min(offset, size_)});
    if (length == 0) return std::vector<Extent>{};
    struct Collect {
      const std::string* context;
      uint64_t end;
      Classify* classify;
      std::vector<Extent> out;
    } c{&context, offset + length, &classify, {}};
    auto cb = [](void* user, const char* ctx, uint64_t off, uint32_t* entries, size_t n,
                 int*) -> int {
      auto* col = static_cast<Collect*>(user);
      if (*col->context != ctx) return 0;  // another negotiated context
      for (size_t i = 0; i + 1 < n && off < col->end; i += 2) {
        uint64_t len = std::min<uint64_t>(entries[i], col->end - off);
        ExtentType t = (*col->classify)(entries[i + 1]);
        if (!col->out.empty() && col->out.back().type == t) {
          col->out.back().length += len;
        } else {
          col->out.push_back({off, len, t});
        }
        off += len;
      }
      return 0;
    };
    std::lock_guard<std::mutex> lock(mu_);
    if (timed_out_) return TimeoutError("block status", offset);
    auto failed = [&] {
      return Status::IOError("block status (" + context + ") of NBD export " + uri_ +
                             " at offset " + std::to_string(offset) + ": " + NbdError() + Hint());
    };
    int64_t cookie =
        nbd_aio_block_status(h_.get(), length, offset, nbd_extent_callback{cb, &c, nullptr},
                             nbd_completion_callback{nullptr, nullptr, nullptr}, 0);
    if (cookie < 0) return failed();
    Clock::time_point start = Clock::now();
    for (;;) {
      int done = nbd_aio_command_completed(h_.get(), static_cast<uint64_t>(cookie));
      if (done < 0) return failed();
      if (done == 1) break;
      if (Expired(start)) {
        timed_out_ = true;  // the callback's state (`c`) is never touched again: see Read
        return TimeoutError("block status", offset);
      }
      if (nbd_poll(h_.get(), PollMs(start)) < 0 &&
          (nbd_aio_is_dead(h_.get()) || nbd_aio_is_closed(h_.get()))) {
        return failed();
      }
    }
    if (c.out.empty() || c.out.front().offset != offset) {
      return Status::IOError("NBD export " + uri_ + " returned no " + context +
                             " extents at offset " + std::to_string(offset));
    }
    return std::move(c.out);
  }

  using Clock = std::chrono::steady_clock;

  // How long nbd_poll may wait: until the timeout counted from `since`, at most a second.
  int PollMs(Clock::time_point since) const {
    if (options_.timeout_seconds <= 0) return -1;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        since + std::chrono::seconds(options_.timeout_seconds) - Clock::now());
    return static_cast<int>(std::clamp<int64_t>(left.count(), 1, 1000));
  }

  bool Expired(Clock::time_point since) const {
    return options_.timeout_seconds > 0 &&
           Clock::now() - since >= std::chrono::seconds(options_.timeout_seconds);
  }

  Status TimeoutError(const char* what, uint64_t offset) const {
    return Status::Unavailable(
        "NBD export " + uri_ + " did not answer a " + what + " request near offset " +
        std::to_string(offset) + " within " + std::to_string(options_.timeout_seconds) +
        " s: the server hangs or the network to it is down. Check the export (and the "
        "hypervisor's NBD server), raise the nbd-timeout setting if it is only slow, then run "
        "the backup again");
  }

  Status ReadError(uint64_t offset) {
    return Status::IOError("read from NBD export " + uri_ + " near offset " +
                           std::to_string(offset) + " failed: " + NbdError() + Hint());
  }

  void Retire(std::vector<int64_t>* cookies, Status* first, uint64_t offset) {
    for (size_t i = 0; i < cookies->size();) {
      int r = nbd_aio_command_completed(h_.get(), static_cast<uint64_t>((*cookies)[i]));
      if (r == 0) {
        ++i;
        continue;
      }
      if (r < 0 && first->ok()) *first = ReadError(offset);
      (*cookies)[i] = cookies->back();
      cookies->pop_back();
    }
  }

  HandlePtr h_;
  std::string uri_;
  NbdOpenOptions options_;
  std::mutex mu_;
  uint64_t size_ = 0;
  BlockSizeConstraints bs_;
  bool has_allocation_ = false, read_only_ = true, can_zero_ = false, can_flush_ = false;
  // A request was not answered in time: the device fails every later call.
  bool timed_out_ = false;
};

}  // namespace

bool IsNbdUri(const std::string& uri) {
  for (const char* scheme : {"nbd://", "nbds://", "nbd+unix://", "nbds+unix://"}) {
    if (uri.starts_with(scheme)) return true;
  }
  return false;
}

std::string MaskUri(const std::string& uri) {
  auto scheme_end = uri.find("://");
  if (scheme_end == std::string::npos) return uri;
  auto auth_start = scheme_end + 3;
  auto auth_end = uri.find_first_of("/?#", auth_start);
  auto at = uri.rfind('@', auth_end == std::string::npos ? uri.size() : auth_end);
  if (at == std::string::npos || at < auth_start) return uri;
  auto colon = uri.find(':', auth_start);
  if (colon == std::string::npos || colon > at) return uri;
  return uri.substr(0, colon + 1) + "***" + uri.substr(at);
}

Result<std::unique_ptr<BlockDevice>> OpenNbd(const std::string& uri,
                                             const NbdOpenOptions& options) {
  std::string shown = MaskUri(uri);
  if (!IsNbdUri(uri)) {
    return Status::InvalidArgument(
        "'" + shown +
        "' is not an NBD URI; use nbd://HOST[:PORT]/EXPORT, nbds://HOST[:PORT]/EXPORT or "
        "nbd+unix:///EXPORT?socket=PATH");
  }
  HandlePtr h(nbd_create());
  if (!h) return Status::IOError("libnbd: " + NbdError());
  nbd_set_handle_name(h.get(), "offhost");
  // The operator's URI may name TLS key files (tls-psk-file=, tls-certificates=).
  nbd_set_uri_allow_local_file(h.get(), true);
  // libnbd zeroes every read buffer first unless told not to. offhost checks the status of
  // every read, and libnbd completes a read only once the whole buffer is filled (else it
  // reports an error, nbd_pread(3)), so no uninitialised byte is used. The zeroing cost a
  // tenth of an incremental's CPU.
  nbd_set_pread_initialize(h.get(), false);
  if (nbd_add_meta_context(h.get(), LIBNBD_CONTEXT_BASE_ALLOCATION) < 0 ||
      (!options.dirty_bitmap.empty() &&
       nbd_add_meta_context(h.get(), options.dirty_bitmap.c_str()) < 0)) {
    return Status::IOError("libnbd: " + NbdError());
  }
  if (nbd_connect_uri(h.get(), uri.c_str()) < 0) {
    return Status::Unavailable("cannot open NBD export " + shown + ": " + NbdError() +
                               "; check that the export is running and the URI is right");
  }
  auto dev = std::make_unique<NbdBlockDevice>(std::move(h), shown, options);
  OFFHOST_RETURN_IF_ERROR(dev->Init());
  OFFHOST_RETURN_IF_ERROR(dev->CheckDirtyBitmap());
  return std::unique_ptr<BlockDevice>(std::move(dev));
}

}  // namespace offhost::snapshot_drivers
