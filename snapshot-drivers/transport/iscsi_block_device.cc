#include "offhost/snapshot-drivers/iscsi_block_device.h"

// clang-format off
#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
// clang-format on
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>

#include "offhost/snapshot-drivers/nbd_block_device.h"

namespace offhost::snapshot_drivers {
namespace {

constexpr uint64_t kExtentWindow = 1ull << 30;            // like NBD: callers loop over big disks
constexpr uint32_t kLbaStatusAllocation = 16 + 16 * 256;  // header + 256 descriptors
constexpr int kReportLunsAllocation = 64 * 1024;          // room for 8191 LUNs
constexpr int kUnitAttentionRetries = 5;
constexpr int kDiscoveryTimeoutSeconds = 30;  // per login and per command

struct ContextDestroyer {
  void operator()(iscsi_context* c) const { iscsi_destroy_context(c); }
};
using ContextPtr = std::unique_ptr<iscsi_context, ContextDestroyer>;

struct TaskFreer {
  void operator()(scsi_task* t) const { scsi_free_scsi_task(t); }
};
using TaskPtr = std::unique_ptr<scsi_task, TaskFreer>;

std::string IscsiError(iscsi_context* ctx) {
  const char* e = iscsi_get_error(ctx);
  return e && *e ? e : "unknown libiscsi error";
}

// libiscsi's own statuses (not SCSI's): the command never got an answer from the target.
bool SessionFailed(int status) {
  return status == SCSI_STATUS_CANCELLED || status == SCSI_STATUS_ERROR ||
         status == SCSI_STATUS_TIMEOUT;
}

std::string StatusText(iscsi_context* ctx, int status, const scsi_task* task) {
  switch (status) {
    case SCSI_STATUS_CANCELLED:
      return "the iSCSI session was lost";
    case SCSI_STATUS_TIMEOUT:
      return "the target did not answer in time";
    case SCSI_STATUS_ERROR:
      return IscsiError(ctx);
    case SCSI_STATUS_CHECK_CONDITION:
      if (task) {
        return std::string(scsi_sense_key_str(task->sense.key)) + " / " +
               scsi_sense_ascq_str(task->sense.ascq);
      }
      [[fallthrough]];
    default:
      return "SCSI status " + std::to_string(status);
  }
}

constexpr const char* kGoneHint =
    "; the target may have gone down — check it and run the backup again";

std::string StripFragment(const std::string& uri) { return uri.substr(0, uri.find('#')); }

std::string Trim(std::string s) {
  auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

std::string DeviceTypeName(int type) {
  switch (type) {
    case SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS:
      return "disk";
    case SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_SEQUENTIAL_ACCESS:
      return "tape";
    case SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_MEDIA_CHANGER:
      return "changer";
    case SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_STORAGE_ARRAY_CONTROLLER:
      return "controller";
    default: {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", type);
      return std::string("other (") + hex + ")";
    }
  }
}

// Where and as whom to log in, from an iscsi:// URI and the credentials.
struct Endpoint {
  std::string portal;  // HOST[:PORT]
  std::string target;  // empty for a discovery session
  int lun = 0;
  std::string user, secret;
  std::string initiator;
  std::string shown;  // the URI, masked, for messages
};

struct UrlDestroyer {
  void operator()(iscsi_url* u) const { iscsi_destroy_url(u); }
};

Result<ContextPtr> NewContext(const std::string& initiator) {
  ContextPtr ctx(iscsi_create_context(initiator.c_str()));
  if (!ctx) return Status::IOError("libiscsi: cannot create a context for " + initiator);
  return ctx;
}

// The USER of iscsi://USER[%PASSWORD]@...: libiscsi keeps it only when a password follows,
// but the secret usually comes from a file.
std::string UriUser(const std::string& uri) {
  auto auth_end = uri.find_first_of("/?#", 8);
  auto at = uri.rfind('@', auth_end == std::string::npos ? uri.size() : auth_end);
  if (at == std::string::npos || at < 8) return "";
  return uri.substr(8, std::min(uri.find_first_of("%:", 8), at) - 8);
}

// libiscsi parses a URI against a context; a scratch one, since the URI may carry a password.
Result<Endpoint> ParseEndpoint(const std::string& uri, bool portal_only,
                               const IscsiCredentials& c) {
  Endpoint ep;
  ep.shown = MaskIscsiUri(uri);
  OFFHOST_ASSIGN_OR_RETURN(ep.initiator, ResolveInitiatorName(c));
  // libiscsi's parse errors quote the URI, password included: say it ourselves.
  OFFHOST_ASSIGN_OR_RETURN(ContextPtr ctx, NewContext(ep.initiator));
  std::unique_ptr<iscsi_url, UrlDestroyer> url(portal_only
                                                   ? iscsi_parse_portal_url(ctx.get(), uri.c_str())
                                                   : iscsi_parse_full_url(ctx.get(), uri.c_str()));
  if (!url) {
    return Status::InvalidArgument("'" + ep.shown + "' is not a valid iSCSI URI; use " +
                                   (portal_only ? "iscsi://[USER@]PORTAL[:PORT]"
                                                : "iscsi://[USER@]PORTAL[:PORT]/TARGET-IQN/LUN"));
  }
  ep.portal = url->portal;
  ep.target = url->target;
  ep.lun = url->lun;
  ep.user = !c.chap_user.empty() ? c.chap_user : UriUser(uri);
  ep.secret = c.chap_secret.empty() ? url->passwd : c.chap_secret;
  if (ep.user.empty() && !ep.secret.empty()) {
    return Status::InvalidArgument("a CHAP secret was given for " + ep.shown +
                                   " but no CHAP user: put it in the URI, iscsi://USER@PORTAL/...");
  }
  if (!ep.user.empty() && ep.secret.empty()) {
    return Status::InvalidArgument("CHAP user '" + ep.user + "' of " + ep.shown +
                                   " has no secret: give --chap-secret-file or set "
                                   "OFFHOST_CHAP_SECRET");
  }
  // Mutual CHAP is an answer to our own CHAP login: without it the target would go unchecked.
  if (ep.user.empty() && !c.target_chap_user.empty()) {
    return Status::InvalidArgument("mutual CHAP (--target-chap-user) needs CHAP for " + ep.shown +
                                   " too: put the CHAP user in the URI, iscsi://USER@PORTAL/...");
  }
  return ep;
}

// Consumes the unit attentions a target raises at the start of a session (power-on, reset),
// which would otherwise fail the first READ CAPACITY.
Status ClearUnitAttentions(iscsi_context* ctx, const Endpoint& ep) {
  for (int i = 0; i < kUnitAttentionRetries; ++i) {
    TaskPtr task(iscsi_testunitready_sync(ctx, ep.lun));
    if (!task) {
      return Status::IOError("TEST UNIT READY on " + ep.shown + ": " + IscsiError(ctx) + kGoneHint);
    }
    if (task->status == SCSI_STATUS_GOOD) return Status::OK();
    if (task->status != SCSI_STATUS_CHECK_CONDITION ||
        task->sense.key != SCSI_SENSE_UNIT_ATTENTION) {
      // Not ready, or a LUN that does not exist: INQUIRY tells which.
      return Status::OK();
    }
  }
  return Status::IOError(ep.shown + " keeps raising unit attentions; check the target's state");
}

// Connects and logs in. A refused TCP connection and a refused login need different fixes,
// hence two steps rather than iscsi_full_connect_sync.
Status Login(iscsi_context* ctx, const Endpoint& ep, iscsi_session_type type,
             const IscsiCredentials& c, int timeout_seconds) {
  iscsi_set_session_type(ctx, type);
  if (type == ISCSI_SESSION_NORMAL) iscsi_set_targetname(ctx, ep.target.c_str());
  iscsi_set_header_digest(ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C);
  // A lost session fails the backup at once; a silent reconnect would retry forever.
  iscsi_set_noautoreconnect(ctx, 1);
  iscsi_set_timeout(ctx, timeout_seconds);
  if (!ep.user.empty()) {
    iscsi_set_initiator_username_pwd(ctx, ep.user.c_str(), ep.secret.c_str());
    if (!c.target_chap_user.empty()) {
      iscsi_set_target_username_pwd(ctx, c.target_chap_user.c_str(), c.target_chap_secret.c_str());
    }
  }
  std::string what = type == ISCSI_SESSION_NORMAL ? "target " + ep.target : "portal " + ep.portal;
  if (iscsi_connect_sync(ctx, ep.portal.c_str()) != 0) {
    // libiscsi's own text here is about reconnecting, which only confuses.
    return Status::Unavailable("cannot reach iSCSI portal " + ep.portal + " (" + ep.shown +
                               "): check the address, the port, the network and that the "
                               "target is running");
  }
  if (iscsi_login_sync(ctx) == 0) return Status::OK();
  std::string why = IscsiError(ctx);
  if (why.find("Target not found") != std::string::npos) {
    // Arrays hide a target from initiators it is not masked to: say so.
    return Status::NotFound("iSCSI " + what + " not found on portal " + ep.portal + " (" +
                            ep.shown + ") for initiator " + ep.initiator +
                            "; check the IQN with `offhost discover iscsi://" + ep.portal +
                            "` and that the target allows this initiator");
  }
  return Status::FailedPrecondition("login to " + what + " refused (" + why + ", " + ep.shown +
                                    "): check the CHAP user and secret and that the target "
                                    "allows initiator " +
                                    ep.initiator);
}

struct LunInfo {
  int device_type = 0;
  std::string vendor, product;
  uint64_t blocks = 0;
  uint32_t block_length = 0;
  bool lbpme = false, lbprz = false;
};

Result<TaskPtr> CheckTask(iscsi_context* ctx, scsi_task* raw, const std::string& what,
                          const Endpoint& ep) {
  TaskPtr task(raw);
  if (!task) return Status::IOError(what + " on " + ep.shown + ": " + IscsiError(ctx) + kGoneHint);
  if (task->status != SCSI_STATUS_GOOD) {
    return Status::IOError(what + " on " + ep.shown +
                           " failed: " + StatusText(ctx, task->status, task.get()) +
                           (SessionFailed(task->status) ? kGoneHint : ""));
  }
  return task;
}

Result<LunInfo> ProbeLun(iscsi_context* ctx, const Endpoint& ep) {
  OFFHOST_ASSIGN_OR_RETURN(
      TaskPtr inq, CheckTask(ctx, iscsi_inquiry_sync(ctx, ep.lun, 0, 0, 255), "INQUIRY", ep));
  auto* std_inq = static_cast<scsi_inquiry_standard*>(scsi_datain_unmarshall(inq.get()));
  if (!std_inq) return Status::IOError("INQUIRY on " + ep.shown + ": unreadable answer");
  // Qualifier 3: the target has no such LUN (SPC); qualifier 1: nothing is attached there.
  if (std_inq->qualifier != SCSI_INQUIRY_PERIPHERAL_QUALIFIER_CONNECTED) {
    return Status::NotFound("LUN " + std::to_string(ep.lun) + " does not exist on target " +
                            ep.target + " (" + ep.shown +
                            "); check the LUN number with "
                            "`offhost discover iscsi://" +
                            ep.portal + "`");
  }
  LunInfo info;
  info.device_type = std_inq->device_type;
  info.vendor = Trim(std_inq->vendor_identification);
  info.product = Trim(std_inq->product_identification);
  if (info.device_type != SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS) return info;
  OFFHOST_RETURN_IF_ERROR(ClearUnitAttentions(ctx, ep));
  OFFHOST_ASSIGN_OR_RETURN(
      TaskPtr rc, CheckTask(ctx, iscsi_readcapacity16_sync(ctx, ep.lun), "READ CAPACITY(16)", ep));
  auto* cap = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(rc.get()));
  if (!cap || cap->block_length == 0) {
    return Status::IOError("READ CAPACITY(16) on " + ep.shown + ": unreadable answer");
  }
  info.blocks = cap->returned_lba + 1;
  info.block_length = cap->block_length;
  info.lbpme = cap->lbpme;
  info.lbprz = cap->lbprz;
  return info;
}

class IscsiBlockDevice final : public BlockDevice {
 public:
  IscsiBlockDevice(ContextPtr ctx, Endpoint ep, const IscsiOpenOptions& options)
      : ctx_(std::move(ctx)), ep_(std::move(ep)), options_(options) {}

  ~IscsiBlockDevice() override {
    // A polite logout frees the session on the array at once; a dead one has nothing to end.
    if (!dead_ && iscsi_is_logged_in(ctx_.get())) iscsi_logout_sync(ctx_.get());
  }

  Status Init() {
    OFFHOST_ASSIGN_OR_RETURN(LunInfo info, ProbeLun(ctx_.get(), ep_));
    if (info.device_type != SCSI_INQUIRY_PERIPHERAL_DEVICE_TYPE_DIRECT_ACCESS) {
      return Status::NotSupported(
          "LUN " + std::to_string(ep_.lun) + " of " + ep_.shown +
          " is not a disk (device type: " + DeviceTypeName(info.device_type) + ", " + info.vendor +
          " " + info.product + "): only disk LUNs can be backed up");
    }
    block_length_ = info.block_length;
    size_ = info.blocks * info.block_length;
    lbpme_ = info.lbpme;
    lbprz_ = info.lbprz;
    bs_ = BlockLimits();
    return Status::OK();
  }

  uint64_t size() const override { return size_; }
  std::string description() const override { return "iSCSI LUN " + ep_.shown; }
  BlockSizeConstraints block_size() const override { return bs_; }

  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override {
    length = std::min({length, kExtentWindow, size_ - std::min(offset, size_)});
    if (length == 0) return std::vector<Extent>{};
    if (!lbpme_) return std::vector<Extent>{{offset, length, ExtentType::kData}};
    if (offset % block_length_ != 0) {
      return Status::InvalidArgument("extents of " + description() + " asked at offset " +
                                     std::to_string(offset) + ", not a multiple of the " +
                                     std::to_string(block_length_) + "-byte block");
    }
    std::lock_guard<std::mutex> lock(mu_);
    OFFHOST_RETURN_IF_ERROR(CheckAlive());
    scsi_task* raw = iscsi_get_lba_status_sync(ctx_.get(), ep_.lun, offset / block_length_,
                                               kLbaStatusAllocation);
    dead_ = !raw || SessionFailed(raw->status);
    auto task = CheckTask(ctx_.get(), raw, "GET LBA STATUS", ep_);
    if (!task.ok()) return task.status();
    auto* st = static_cast<scsi_get_lba_status*>(scsi_datain_unmarshall(task->get()));
    if (!st) return Status::IOError("GET LBA STATUS on " + ep_.shown + ": unreadable answer");
    return ToExtents(*st, offset, offset + length);
  }

  Status Read(std::span<const ReadRequest> requests) override {
    std::vector<Piece> pieces;
    // Requests not on block boundaries (file-system metadata: an LVM label, a superblock) are
    // read whole blocks at a time into a bounce buffer and copied out afterwards.
    std::vector<Bounce> bounces;
    for (const auto& r : requests) {
      OFFHOST_RETURN_IF_ERROR(CheckRequest(r));
      ReadRequest aligned = r;
      if (r.offset % block_length_ != 0 || r.buffer.size() % block_length_ != 0) {
        uint64_t begin = r.offset - r.offset % block_length_;
        uint64_t end = r.offset + r.buffer.size();
        end += (block_length_ - end % block_length_) % block_length_;
        bounces.push_back({r, std::vector<char>(end - begin), begin});
        aligned = {begin, std::span<char>(bounces.back().data)};
      }
      for (size_t done = 0; done < aligned.buffer.size();) {
        size_t n = std::min<size_t>(bs_.maximum, aligned.buffer.size() - done);
        pieces.push_back({aligned.offset + done, aligned.buffer.data() + done, n});
        done += n;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    OFFHOST_RETURN_IF_ERROR(CheckAlive());
    ReadState state;
    size_t next = 0;
    // Keep max_in_flight READs queued; after an error issue no more but let the queued ones
    // finish, since libiscsi writes into their buffers until they complete.
    while ((state.first.ok() && next < pieces.size()) || state.in_flight > 0) {
      while (state.first.ok() && next < pieces.size() && state.in_flight < options_.max_in_flight) {
        Status issued = Issue(pieces[next++], &state);
        if (!issued.ok()) state.Fail(std::move(issued));
      }
      if (state.in_flight == 0) break;
      Status served = ServiceOnce();
      if (!served.ok()) {
        state.Fail(std::move(served));
        Abandon();  // completes every queued READ as cancelled
      }
    }
    if (!state.first.ok()) return state.first;
    for (const auto& b : bounces) {
      std::memcpy(b.request.buffer.data(), b.data.data() + (b.request.offset - b.begin),
                  b.request.buffer.size());
    }
    return Status::OK();
  }

 private:
  struct Piece {
    uint64_t offset;
    char* buf;
    size_t len;
  };
  struct Bounce {
    ReadRequest request;     // what the caller asked for
    std::vector<char> data;  // the whole blocks around it
    uint64_t begin;          // where data starts on the LUN
  };
  struct ReadState {
    Status first;
    int in_flight = 0;
    void Fail(Status s) {
      if (first.ok()) first = std::move(s);
    }
  };
  struct Pending {
    IscsiBlockDevice* self;
    ReadState* state;
    uint64_t offset;
    size_t len;
  };

  BlockSizeConstraints BlockLimits() {
    BlockSizeConstraints bs;
    bs.minimum = block_length_;
    bs.preferred = std::max<uint32_t>(block_length_, 4096);
    uint64_t maximum = options_.max_request;
    // The Block Limits VPD page is optional (SBC-3); without it the defaults stand.
    TaskPtr task(
        iscsi_inquiry_sync(ctx_.get(), ep_.lun, 1, SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS, 255));
    if (task && task->status == SCSI_STATUS_GOOD) {
      if (auto* bl = static_cast<scsi_inquiry_block_limits*>(scsi_datain_unmarshall(task.get()))) {
        if (bl->max_xfer_len > 0) {
          maximum = std::min<uint64_t>(maximum, uint64_t{bl->max_xfer_len} * block_length_);
        }
        if (bl->opt_gran > 0) bs.preferred = bl->opt_gran * block_length_;
      }
    }
    // A request must stay a multiple of the block.
    bs.maximum =
        static_cast<uint32_t>(std::max<uint64_t>(block_length_, maximum - maximum % block_length_));
    bs.preferred = std::min(bs.preferred, bs.maximum);
    return bs;
  }

  // Deallocated and anchored blocks read as zeroes only when the LUN says so (LBPRZ);
  // otherwise their contents are undefined and must be read like data.
  std::vector<Extent> ToExtents(const scsi_get_lba_status& st, uint64_t begin, uint64_t end) {
    std::vector<Extent> out;
    uint64_t pos = begin;
    for (uint32_t i = 0; i < st.num_descriptors && pos < end; ++i) {
      const auto& d = st.descriptors[i];
      uint64_t d_begin = d.lba * block_length_;
      uint64_t d_end = d_begin + uint64_t{d.num_blocks} * block_length_;
      if (d_end <= pos || d_begin > pos) continue;  // not contiguous with what we have
      uint64_t len = std::min(d_end, end) - pos;
      ExtentType t = d.provisioning == SCSI_PROVISIONING_TYPE_MAPPED || !lbprz_ ? ExtentType::kData
                                                                                : ExtentType::kHole;
      if (!out.empty() && out.back().type == t) {
        out.back().length += len;
      } else {
        out.push_back({pos, len, t});
      }
      pos += len;
    }
    // A target that answers nothing useful: read everything rather than guess.
    if (out.empty()) out.push_back({begin, end - begin, ExtentType::kData});
    return out;
  }

  Status CheckRequest(const ReadRequest& r) const {
    if (r.offset > size_ || r.buffer.size() > size_ - r.offset) {
      return Status::InvalidArgument("read at offset " + std::to_string(r.offset) +
                                     " runs past the end of " + description());
    }
    return Status::OK();
  }

  Status CheckAlive() const {
    if (!dead_) return Status::OK();
    return Status::IOError("the iSCSI session to " + ep_.shown +
                           " was lost earlier; the target may have gone down — check it and "
                           "run the backup again");
  }

  Status ReadError(uint64_t offset, const std::string& why) const {
    return Status::IOError("read from " + description() + " near offset " + std::to_string(offset) +
                           " failed: " + why + kGoneHint);
  }

  Status Issue(const Piece& p, ReadState* state) {
    auto* pending = new Pending{this, state, p.offset, p.len};
    scsi_task* task = iscsi_read16_task(ctx_.get(), ep_.lun, p.offset / block_length_,
                                        static_cast<uint32_t>(p.len), block_length_, 0, 0, 0, 0, 0,
                                        &IscsiBlockDevice::ReadDone, pending);
    if (!task) {
      delete pending;
      return ReadError(p.offset, IscsiError(ctx_.get()));
    }
    // Straight into the caller's buffer: no copy out of the task's data-in.
    scsi_task_add_data_in_buffer(task, static_cast<int>(p.len),
                                 reinterpret_cast<unsigned char*>(p.buf));
    ++state->in_flight;
    return Status::OK();
  }

  static void ReadDone(iscsi_context* ctx, int status, void* command_data, void* private_data) {
    std::unique_ptr<Pending> p(static_cast<Pending*>(private_data));
    TaskPtr task(static_cast<scsi_task*>(command_data));
    --p->state->in_flight;
    if (status == SCSI_STATUS_GOOD && task && task->residual_status == SCSI_RESIDUAL_UNDERFLOW &&
        task->residual > 0) {
      p->state->Fail(p->self->ReadError(p->offset, "short read from the target"));
    } else if (status != SCSI_STATUS_GOOD) {
      p->state->Fail(p->self->ReadError(p->offset, StatusText(ctx, status, task.get())));
    }
  }

  // One poll + service round; a second's timeout lets libiscsi expire stuck commands.
  Status ServiceOnce() {
    pollfd pfd{iscsi_get_fd(ctx_.get()), static_cast<short>(iscsi_which_events(ctx_.get())), 0};
    int r = ::poll(&pfd, 1, 1000);
    if (r < 0 && errno != EINTR) return Status::FromErrno("poll iSCSI session " + ep_.shown, errno);
    if (iscsi_service(ctx_.get(), r > 0 ? pfd.revents : 0) < 0) {
      return Status::IOError("the iSCSI session to " + ep_.shown + " was lost (" +
                             IscsiError(ctx_.get()) + ")" + kGoneHint);
    }
    return Status::OK();
  }

  void Abandon() {
    dead_ = true;
    iscsi_scsi_cancel_all_tasks(ctx_.get());
  }

  ContextPtr ctx_;
  Endpoint ep_;
  IscsiOpenOptions options_;
  std::mutex mu_;  // an iscsi_context is not thread safe
  uint64_t size_ = 0;
  uint32_t block_length_ = 512;
  bool lbpme_ = false, lbprz_ = false, dead_ = false;
  BlockSizeConstraints bs_;
};

// The LUNs of one target: a normal session, REPORT LUNS, then each LUN's identity.
Status ListLuns(const Endpoint& portal, const IscsiCredentials& c, IscsiTarget* target) {
  Endpoint ep = portal;
  ep.target = target->name;
  ep.shown = MaskIscsiUri("iscsi://" + ep.portal + "/" + ep.target);
  OFFHOST_ASSIGN_OR_RETURN(ContextPtr ctx, NewContext(ep.initiator));
  OFFHOST_RETURN_IF_ERROR(Login(ctx.get(), ep, ISCSI_SESSION_NORMAL, c, kDiscoveryTimeoutSeconds));
  OFFHOST_ASSIGN_OR_RETURN(
      TaskPtr task, CheckTask(ctx.get(), iscsi_reportluns_sync(ctx.get(), 0, kReportLunsAllocation),
                              "REPORT LUNS", ep));
  auto* list = static_cast<scsi_reportluns_list*>(scsi_datain_unmarshall(task.get()));
  if (!list) return Status::IOError("REPORT LUNS on " + ep.shown + ": unreadable answer");
  for (uint32_t i = 0; i < list->num; ++i) {
    IscsiLun lun;
    lun.lun = list->luns[i];
    lun.uri = "iscsi://" + ep.portal + "/" + ep.target + "/" + std::to_string(lun.lun);
    ep.lun = lun.lun;
    OFFHOST_ASSIGN_OR_RETURN(LunInfo info, ProbeLun(ctx.get(), ep));
    lun.device_type = DeviceTypeName(info.device_type);
    lun.vendor = info.vendor;
    lun.product = info.product;
    lun.size = info.blocks * info.block_length;
    lun.block_size = info.block_length;
    lun.thin = info.lbpme;
    target->luns.push_back(std::move(lun));
  }
  iscsi_logout_sync(ctx.get());
  return Status::OK();
}

struct DiscoveryFreer {
  iscsi_context* ctx;
  void operator()(iscsi_discovery_address* a) const { iscsi_free_discovery_data(ctx, a); }
};

}  // namespace

IscsiCredentials IscsiCredentialsFromSettings(const std::map<std::string, std::string>& settings) {
  IscsiCredentials c;
  auto get = [&](const char* key, std::string* out) {
    if (auto it = settings.find(key); it != settings.end()) *out = it->second;
  };
  get("initiator-name", &c.initiator_name);
  get("initiator-name-file", &c.initiator_name_file);
  get("chap-user", &c.chap_user);
  get("chap-secret", &c.chap_secret);
  get("target-chap-user", &c.target_chap_user);
  get("target-chap-secret", &c.target_chap_secret);
  return c;
}

std::string DefaultInitiatorName() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || !*host) std::strcpy(host, "localhost");
  return std::string("iqn.2026-11.org.offhost:") + host;
}

Result<std::string> ResolveInitiatorName(const IscsiCredentials& c) {
  if (!c.initiator_name_file.empty()) {
    std::ifstream in(c.initiator_name_file);
    if (in) {
      for (std::string line; std::getline(in, line);) {
        line = Trim(line);
        if (line.starts_with("InitiatorName=")) {
          std::string name = Trim(line.substr(14));
          if (!name.empty()) return name;
        }
      }
      return Status::InvalidArgument(c.initiator_name_file +
                                     " has no InitiatorName= line; fix it (it is open-iscsi's "
                                     "initiator name, which the SAN's LUN masking knows)");
    }
  }
  if (!c.initiator_name.empty()) return c.initiator_name;
  return DefaultInitiatorName();
}

bool IsIscsiUri(const std::string& uri) { return uri.starts_with("iscsi://"); }

std::string MaskIscsiUri(const std::string& uri) {
  std::string out = MaskUri(uri);
  if (!IsIscsiUri(out)) return out;
  // libiscsi's USER%PASSWORD@ form.
  auto auth_end = out.find_first_of("/?#", 8);
  auto at = out.rfind('@', auth_end == std::string::npos ? out.size() : auth_end);
  if (at != std::string::npos && at >= 8) {
    auto pct = out.find('%', 8);
    if (pct != std::string::npos && pct < at) out = out.substr(0, pct + 1) + "***" + out.substr(at);
  }
  return out;
}

std::string IscsiUriWithoutUser(const std::string& uri) {
  if (!IsIscsiUri(uri)) return uri;
  auto auth_end = uri.find_first_of("/?#", 8);
  auto at = uri.rfind('@', auth_end == std::string::npos ? uri.size() : auth_end);
  if (at == std::string::npos || at < 8) return uri;
  return "iscsi://" + uri.substr(at + 1);
}

Result<std::unique_ptr<BlockDevice>> OpenIscsi(const std::string& uri,
                                               const IscsiOpenOptions& options) {
  // "#VG/LV" names a logical volume on the LUN: the proxy's business, not the transport's.
  std::string bare = StripFragment(uri);
  if (!IsIscsiUri(bare)) {
    return Status::InvalidArgument("'" + MaskIscsiUri(bare) +
                                   "' is not an iSCSI URI; use "
                                   "iscsi://[USER@]PORTAL[:PORT]/TARGET-IQN/LUN");
  }
  OFFHOST_ASSIGN_OR_RETURN(Endpoint ep, ParseEndpoint(bare, false, options.credentials));
  OFFHOST_ASSIGN_OR_RETURN(ContextPtr ctx, NewContext(ep.initiator));
  OFFHOST_RETURN_IF_ERROR(
      Login(ctx.get(), ep, ISCSI_SESSION_NORMAL, options.credentials, options.timeout_seconds));
  auto dev = std::make_unique<IscsiBlockDevice>(std::move(ctx), std::move(ep), options);
  OFFHOST_RETURN_IF_ERROR(dev->Init());
  return std::unique_ptr<BlockDevice>(std::move(dev));
}

Result<std::vector<IscsiTarget>> DiscoverIscsi(const std::string& portal_uri,
                                               const IscsiCredentials& credentials) {
  std::string bare = StripFragment(portal_uri);
  if (!IsIscsiUri(bare)) {
    return Status::InvalidArgument("'" + MaskIscsiUri(bare) +
                                   "' is not an iSCSI portal; use iscsi://[USER@]PORTAL[:PORT]");
  }
  OFFHOST_ASSIGN_OR_RETURN(Endpoint ep, ParseEndpoint(bare, true, credentials));
  OFFHOST_ASSIGN_OR_RETURN(ContextPtr ctx, NewContext(ep.initiator));
  OFFHOST_RETURN_IF_ERROR(
      Login(ctx.get(), ep, ISCSI_SESSION_DISCOVERY, credentials, kDiscoveryTimeoutSeconds));
  std::unique_ptr<iscsi_discovery_address, DiscoveryFreer> found(iscsi_discovery_sync(ctx.get()),
                                                                 DiscoveryFreer{ctx.get()});
  if (!found && *iscsi_get_error(ctx.get())) {
    return Status::IOError("SendTargets discovery on " + ep.shown + ": " + IscsiError(ctx.get()));
  }
  std::vector<IscsiTarget> targets;
  for (auto* a = found.get(); a; a = a->next) {
    IscsiTarget t;
    t.name = a->target_name;
    for (auto* p = a->portals; p; p = p->next) t.portals.push_back(p->portal);
    // One target refusing us must not hide the others.
    Status listed = ListLuns(ep, credentials, &t);
    if (!listed.ok()) {
      t.luns.clear();
      t.error = listed.message();
    }
    targets.push_back(std::move(t));
  }
  found.reset();
  iscsi_logout_sync(ctx.get());
  return targets;
}

}  // namespace offhost::snapshot_drivers
