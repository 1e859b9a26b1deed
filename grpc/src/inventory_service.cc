// offhost.v1 InventoryService (inventory.proto): the hosts and VMs of the daemon's
// configuration ([[host]], [[vm]]), and with VM_VIEW_FULL / HOST_VIEW_FULL what their drivers
// see now (proxy::DescribeVm); the credentials it names; iSCSI discovery of a portal host.
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>

#include "datastores.h"
#include "file_info.h"
#include "inventory.h"
#include "names.h"
#include "offhost/proxy/iscsi_discovery.h"
#include "offhost/proxy/vm_describe.h"
#include "offhost/snapshot-drivers/iscsi_block_device.h"
#include "offhost/snapshot-drivers/nbd_block_device.h"
#include "offhost/v1/inventory.grpc.pb.h"
#include "pagination.h"
#include "services.h"
#include "snapshots.h"
#include "status_map.h"

namespace offhost::grpcapi {
namespace {

namespace sd = snapshot_drivers;
using google::protobuf::util::TimeUtil;

std::string Setting(const DriverSettingsMap& s, const std::string& key) {
  auto it = s.find(key);
  return it == s.end() ? "" : it->second;
}

bool LooksLikeUuid(const std::string& s) {
  return s.size() == 36 && std::count(s.begin(), s.end(), '-') == 4;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Mask(const std::string& source) {
  return sd::IsIscsiUri(source) ? sd::MaskIscsiUri(source) : sd::MaskUri(source);
}

// "scheme://authority" of a URI, the folder of a path or of a unix socket: where a disk is.
std::string PlaceOf(const std::string& source) {
  if (auto q = source.find("socket="); q != std::string::npos) {
    std::string sock = source.substr(q + 7, source.find('&', q) - (q + 7));
    return sock.substr(0, sock.rfind('/') == std::string::npos ? sock.size() : sock.rfind('/'));
  }
  if (auto scheme = source.find("://"); scheme != std::string::npos) {
    return Mask(source.substr(0, source.find('/', scheme + 3)));
  }
  auto slash = source.rfind('/');
  return slash == std::string::npos || slash == 0 ? source : source.substr(0, slash);
}

// Host.address: the libvirt URI, the iSCSI portal, the QMP socket's or images' folder, the
// NBD server; from the host's settings, else from the first disk source of its VMs.
std::string HostAddress(const ServiceContext& context, const HostConfig& host) {
  if (host.driver == "libvirt") return sd::MaskUri(Setting(host.settings, "connect"));
  if (std::string portal = Setting(host.settings, "portal"); !portal.empty()) return Mask(portal);
  std::vector<const DriverSettingsMap*> maps{&host.settings};
  for (const VmConfig& vm : context.vms) {
    if (vm.host == host.name) maps.push_back(&vm.settings);
  }
  for (const DriverSettingsMap* s : maps) {
    if (host.driver == "qemu" && !Setting(*s, "qmp").empty()) return PlaceOf(Setting(*s, "qmp"));
    for (const auto& [k, v] : *s) {
      if (k.starts_with("disk.")) return PlaceOf(v);
    }
  }
  return "";
}

uint32_t VmCount(const ServiceContext& context, const std::string& host) {
  return static_cast<uint32_t>(std::count_if(context.vms.begin(), context.vms.end(),
                                             [&](const VmConfig& v) { return v.host == host; }));
}

// DriverSettings of the VM: every non-secret setting the driver takes, URIs masked.
void FillSettings(const std::string& driver, const sd::SnapshotRequest& req,
                  v1::DriverSettings* out) {
  const auto& s = req.settings;
  std::vector<std::pair<std::string, std::string>> disks;
  std::vector<std::string> only;
  for (const auto& [k, v] : s) {
    if (k.starts_with("disk.")) disks.emplace_back(k.substr(5), v);
    if (k.starts_with("only.")) only.push_back(k.substr(5));
  }
  if (driver == "nbd") {
    auto* nbd = out->mutable_nbd();
    for (const auto& [name, uri] : disks) {
      auto* d = nbd->add_disks();
      d->set_name(name);
      d->set_uri(sd::MaskUri(uri));
    }
    nbd->set_bitmap(Setting(s, "bitmap"));
  } else if (driver == "iscsi") {
    auto* iscsi = out->mutable_iscsi();
    for (const auto& [name, uri] : disks) {
      auto* d = iscsi->add_disks();
      d->set_name(name);
      d->set_uri(sd::MaskIscsiUri(uri));
    }
    iscsi->set_initiator_name(Setting(s, "initiator-name"));
  } else if (driver == "image") {
    auto* image = out->mutable_image();
    for (const auto& [name, path] : disks) {
      auto* d = image->add_disks();
      d->set_name(name);
      d->set_path(path);
    }
    image->set_bitmap(Setting(s, "bitmap"));
  } else if (driver == "libvirt") {
    auto* lv = out->mutable_libvirt();
    lv->set_connect_uri(sd::MaskUri(Setting(s, "connect")));
    lv->set_domain(req.vm);
    lv->set_nbd_address(Setting(s, "nbd-address"));
    lv->set_scratch_dir(Setting(s, "scratch-dir"));
    for (const auto& d : only) lv->add_only_disks(d);
  } else if (driver == "qemu") {
    auto* q = out->mutable_qemu();
    q->set_qmp_socket(Setting(s, "qmp"));
    q->set_qga_socket(Setting(s, "qga"));
    for (const auto& d : only) q->add_only_disks(d);
  }
}

v1::Vm::PowerState PowerStateOf(const std::string& state) {
  if (state == "running") return v1::Vm::POWER_STATE_RUNNING;
  if (state == "paused") return v1::Vm::POWER_STATE_PAUSED;
  if (state == "stopped") return v1::Vm::POWER_STATE_STOPPED;
  return v1::Vm::POWER_STATE_UNSPECIFIED;
}

// The datastores opened for one request, each at most once; null for one that cannot be
// opened (the VM then shows no latest snapshot, and describes as if never backed up).
class DatastoreCache {
 public:
  explicit DatastoreCache(const ServiceContext& context) : context_(context) {}
  storage::Datastore* Get(const std::string& name) {
    auto it = open_.find(name);
    if (it != open_.end()) return it->second.get();
    std::unique_ptr<storage::Datastore> ds;
    if (auto config = FindDatastore(context_, name); config.ok()) {
      if (auto opened = OpenDatastore(**config); opened.ok()) ds = std::move(*opened);
    }
    return open_.emplace(name, std::move(ds)).first->second.get();
  }

 private:
  const ServiceContext& context_;
  std::map<std::string, std::unique_ptr<storage::Datastore>> open_;
};

// One VM of the inventory, with what a request needs of it.
struct Entry {
  const HostConfig* host;
  const VmConfig* vm;
  // Its latest snapshot in its default datastore (FillBasic finds it).
  std::optional<storage::SnapshotRecord> latest;
};

// VM_VIEW_BASIC: the configuration, and the latest snapshot in its default datastore (which
// also tells the UUID the hypervisor had at that backup).
void FillBasic(const ServiceContext& context, DatastoreCache& cache, Entry& e, v1::Vm* out) {
  sd::SnapshotRequest req = DriverRequest(*e.host, *e.vm);
  out->set_name(VmResource(e.host->name, e.vm->name));
  out->set_vm_id(e.vm->name);
  out->set_host(HostResource(e.host->name));
  out->set_driver(DriverOf(e.host->driver));
  out->set_origin(v1::Vm::ORIGIN_CONFIGURED);
  if (req.vm != e.vm->name && !LooksLikeUuid(req.vm)) out->set_hypervisor_name(req.vm);
  if (LooksLikeUuid(req.vm)) out->set_uuid(Lower(req.vm));
  FillSettings(e.host->driver, req, out->mutable_settings());
  int64_t freeze = 10;
  if (std::string t = Setting(req.settings, "freeze-timeout"); !t.empty()) {
    freeze = std::max<int64_t>(1, std::atoll(t.c_str()));
  }
  *out->mutable_freeze_timeout() = TimeUtil::SecondsToDuration(freeze);
  std::string ds = DefaultDatastore(context, *e.host, e.vm);
  if (ds.empty()) return;
  out->set_default_datastore(DatastoreResource(ds));
  storage::Datastore* datastore = cache.Get(ds);
  if (datastore == nullptr) return;
  if (auto snaps = datastore->ListSnapshots(e.vm->name); snaps.ok() && !snaps->empty()) {
    e.latest = snaps->back();
    out->set_latest_snapshot(SnapshotResource(ds, e.vm->name, e.latest->id));
    if (out->uuid().empty()) out->set_uuid(Lower(e.latest->meta.vm_uuid));
  }
}

// VM_VIEW_FULL's additions, from the driver's description (or why there is none).
void FillFull(const Result<sd::VmDescription>& described, v1::Vm* out) {
  *out->mutable_describe_time() = TimeUtil::GetCurrentTime();
  if (!described.ok()) {
    out->set_inventory_error(described.status().message());
    return;
  }
  const sd::VmDescription& d = *described;
  if (!d.uuid.empty()) out->set_uuid(Lower(d.uuid));
  if (!d.name.empty() && d.name != out->vm_id()) out->set_hypervisor_name(d.name);
  out->set_power_state(PowerStateOf(d.power_state));
  for (const sd::DiskInfo& disk : d.disks) {
    v1::VmDisk* v = out->add_disks();
    v->set_name(disk.name);
    v->set_size_bytes(disk.size);
    v->set_source(Mask(disk.source));
    v->set_format(disk.format);
    v->set_incremental_possible(disk.full_reason.empty());
    v->set_full_reason(disk.full_reason);
  }
  for (const sd::ExcludedDisk& x : d.excluded) {
    v1::ExcludedDisk* e = out->add_excluded_disks();
    e->set_name(x.name);
    e->set_reason(x.reason);
  }
}

std::string HumanTimeout(std::chrono::milliseconds t) {
  return t.count() % 1000 == 0 ? std::to_string(t.count() / 1000) + " s"
                               : std::to_string(t.count()) + " ms";
}

// The VMs whose driver is being asked now ("host/vm") and the answer to come, shared with the
// threads that ask, which may outlive the call and the service.
struct InFlight {
  std::mutex mu;
  std::map<std::string, std::shared_future<Result<sd::VmDescription>>> vms;
};

// The drivers of several VMs asked at once, each on a thread of its own, for at most the
// context's describe_timeout (less when the call's deadline is nearer): a host that does not
// answer (a TCP connect to an address nobody holds, a server that never speaks) then costs one
// timeout, not one per VM, and never holds the call until the kernel gives up. A driver still
// waiting after that is left to finish on its own; it holds nothing of the request. A VM whose
// driver is still being asked for an earlier call is not asked again: this call waits for the
// same answer, so callers cannot pile up threads behind a host that hangs (at most one per VM).
std::vector<Result<sd::VmDescription>> DescribeAll(grpc::ServerContext* ctx,
                                                   const ServiceContext& context,
                                                   const std::shared_ptr<InFlight>& in_flight,
                                                   const std::vector<Entry>& entries) {
  auto deadline = std::chrono::system_clock::now() + context.describe_timeout;
  if (ctx != nullptr) {
    auto call = ctx->deadline() - std::chrono::milliseconds(500);
    if (call < deadline) deadline = call;
  }
  std::vector<std::shared_future<Result<sd::VmDescription>>> pending;
  for (const Entry& e : entries) {
    std::string key = e.host->name + "/" + e.vm->name;
    std::lock_guard<std::mutex> lock(in_flight->mu);
    if (auto it = in_flight->vms.find(key); it != in_flight->vms.end()) {
      pending.push_back(it->second);
      continue;
    }
    proxy::VmDescribeRequest req;
    req.driver = e.host->driver;
    req.snapshot = DriverRequest(*e.host, *e.vm);
    req.latest = e.latest;
    std::packaged_task<Result<sd::VmDescription>()> task(
        [req = std::move(req)]() mutable { return proxy::DescribeVm(std::move(req)); });
    pending.push_back(task.get_future().share());
    in_flight->vms.emplace(key, pending.back());
    std::thread([task = std::move(task), in_flight, key]() mutable {
      task();
      std::lock_guard<std::mutex> done(in_flight->mu);
      in_flight->vms.erase(key);
    }).detach();
  }
  std::vector<Result<sd::VmDescription>> out;
  for (size_t i = 0; i < pending.size(); ++i) {
    if (pending[i].wait_until(deadline) == std::future_status::ready) {
      out.push_back(pending[i].get());
    } else {
      out.push_back(Status::Unavailable("host " + entries[i].host->name +
                                        " did not answer within " +
                                        HumanTimeout(context.describe_timeout) +
                                        " (asking about VM " + entries[i].vm->name + ")"));
    }
  }
  return out;
}

void FillHost(const ServiceContext& context, const HostConfig& h, v1::Host* out) {
  out->set_name(HostResource(h.name));
  out->set_driver(DriverOf(h.driver));
  out->set_address(HostAddress(context, h));
  out->set_description(h.description);
  if (std::string ds = DefaultDatastore(context, h, nullptr); !ds.empty()) {
    out->set_default_datastore(DatastoreResource(ds));
  }
  out->set_ad_hoc_sources_allowed(h.ad_hoc_sources_allowed);
  out->set_vm_count(VmCount(context, h.name));
}

// HOST_VIEW_FULL of several hosts, asked at once: a host answers when its driver can describe
// its first VM. An error that is not about reaching it (a domain the hypervisor does not know)
// still means it answered.
void FillHostStatuses(grpc::ServerContext* ctx, const ServiceContext& context,
                      const std::shared_ptr<InFlight>& in_flight,
                      const std::vector<const HostConfig*>& hosts,
                      const std::vector<v1::Host*>& out) {
  std::vector<Entry> entries;
  std::vector<size_t> asked;  // the host of each entry
  for (size_t i = 0; i < hosts.size(); ++i) {
    v1::HostStatus* status = out[i]->mutable_status();
    *status->mutable_check_time() = TimeUtil::GetCurrentTime();
    auto vm = std::find_if(context.vms.begin(), context.vms.end(),
                           [&](const VmConfig& v) { return v.host == hosts[i]->name; });
    if (vm == context.vms.end()) {
      status->set_message("no VM of this host is configured, so there is nothing to ask it about");
      continue;
    }
    entries.push_back({hosts[i], &*vm, std::nullopt});
    asked.push_back(i);
  }
  auto results = DescribeAll(ctx, context, in_flight, entries);
  for (size_t k = 0; k < results.size(); ++k) {
    v1::HostStatus* status = out[asked[k]]->mutable_status();
    const Result<sd::VmDescription>& r = results[k];
    bool unreachable = !r.ok() && r.status().code() == StatusCode::kUnavailable;
    status->set_state(unreachable ? v1::HostStatus::STATE_UNREACHABLE
                                  : v1::HostStatus::STATE_REACHABLE);
    if (!r.ok()) status->set_message(r.status().message());
  }
}

// The iSCSI portal of a host: its "portal" setting, else the portal of its VMs' first LUN.
std::string IscsiPortal(const ServiceContext& context, const HostConfig& h) {
  if (std::string p = Setting(h.settings, "portal"); !p.empty()) return p;
  std::vector<const DriverSettingsMap*> maps{&h.settings};
  for (const VmConfig& vm : context.vms) {
    if (vm.host == h.name) maps.push_back(&vm.settings);
  }
  for (const DriverSettingsMap* s : maps) {
    for (const auto& [k, v] : *s) {
      if (!k.starts_with("disk.") || !sd::IsIscsiUri(v)) continue;
      return v.substr(0, v.find('/', sizeof("iscsi://") - 1));
    }
  }
  return "";
}

class InventoryService final : public v1::InventoryService::Service {
 public:
  explicit InventoryService(ServiceContext& context) : context_(context) {}

  grpc::Status ListHosts(grpc::ServerContext* ctx, const v1::ListHostsRequest* req,
                         v1::ListHostsResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(Page page, ReadPage(*req), ctx, "");
    std::vector<const HostConfig*> hosts;
    for (const HostConfig& h : context_.hosts) hosts.push_back(&h);
    std::sort(hosts.begin(), hosts.end(), [](auto* a, auto* b) { return a->name < b->name; });
    std::vector<const HostConfig*> page_hosts;
    std::vector<v1::Host*> filled;
    for (size_t i = page.begin(hosts.size()); i < page.end(hosts.size()); ++i) {
      filled.push_back(out->add_hosts());
      FillHost(context_, *hosts[i], filled.back());
      page_hosts.push_back(hosts[i]);
    }
    if (req->view() == v1::HOST_VIEW_FULL) FillHostStatuses(ctx, context_, in_flight_, page_hosts, filled);
    out->set_next_page_token(NextPageToken(*req, page, hosts.size()));
    return grpc::Status::OK;
  }

  grpc::Status GetHost(grpc::ServerContext* ctx, const v1::GetHostRequest* req,
                       v1::Host* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    const HostConfig* host = nullptr;
    if (auto st = LookupHost(ctx, req->name(), "name", &host); !st.ok()) return st;
    FillHost(context_, *host, out);
    if (req->view() == v1::HOST_VIEW_FULL) FillHostStatuses(ctx, context_, in_flight_, {host}, {out});
    return grpc::Status::OK;
  }

  grpc::Status ListVms(grpc::ServerContext* ctx, const v1::ListVmsRequest* req,
                       v1::ListVmsResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(Page page, ReadPage(*req), ctx, "");
    std::string host_name;
    if (!SplitHostName(req->parent(), &host_name)) {
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_NAME",
                  "parent \"" + req->parent() + "\" is not \"hosts/{host}\" or \"hosts/-\"",
                  {{"field", "parent"}});
    }
    if (host_name != kAny) {
      const HostConfig* host = nullptr;
      if (auto st = LookupHost(ctx, req->parent(), "parent", &host); !st.ok()) return st;
    }
    bool full = req->view() == v1::VM_VIEW_FULL;
    DatastoreCache cache(context_);
    std::vector<Entry> entries;
    for (const VmConfig& vm : context_.vms) {
      const HostConfig* host = FindHost(context_, vm.host);
      if (host == nullptr || (host_name != kAny && vm.host != host_name)) continue;
      if (req->driver() != v1::DRIVER_UNSPECIFIED && DriverOf(host->driver) != req->driver()) {
        continue;
      }
      entries.push_back({host, &vm, std::nullopt});
    }
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.host->name, a.vm->name) < std::tie(b.host->name, b.vm->name);
    });
    std::vector<v1::Vm> vms(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) FillBasic(context_, cache, entries[i], &vms[i]);
    std::vector<bool> described(entries.size(), false);
    auto describe = [&](const std::vector<size_t>& which) {
      std::vector<Entry> some;
      for (size_t i : which) some.push_back(entries[i]);
      auto results = DescribeAll(ctx, context_, in_flight_, some);
      for (size_t k = 0; k < which.size(); ++k) {
        FillFull(results[k], &vms[which[k]]);
        described[which[k]] = true;
      }
    };
    // A UUID or hypervisor name only the driver can tell (libvirt, qemu) is asked for before
    // filtering; the other drivers' VMs are filtered on the configuration, and only the VMs
    // of the page are described.
    if (full && (!req->uuid().empty() || !req->hypervisor_name().empty())) {
      std::vector<size_t> hypervisor_vms;
      for (size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].host->driver == "libvirt" || entries[i].host->driver == "qemu") {
          hypervisor_vms.push_back(i);
        }
      }
      describe(hypervisor_vms);
    }
    std::vector<size_t> kept;
    for (size_t i = 0; i < vms.size(); ++i) {
      if (Matches(*req, vms[i])) kept.push_back(i);
    }
    std::vector<size_t> page_vms;
    for (size_t k = page.begin(kept.size()); k < page.end(kept.size()); ++k) {
      page_vms.push_back(kept[k]);
    }
    if (full) {
      std::vector<size_t> rest;
      for (size_t i : page_vms) {
        if (!described[i]) rest.push_back(i);
      }
      describe(rest);
    }
    for (size_t i : page_vms) *out->add_vms() = std::move(vms[i]);
    out->set_next_page_token(NextPageToken(*req, page, kept.size()));
    return grpc::Status::OK;
  }

  grpc::Status GetVm(grpc::ServerContext* ctx, const v1::GetVmRequest* req, v1::Vm* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    std::string host_name, vm_name;
    if (!SplitVmName(req->name(), &host_name, &vm_name)) {
      return Fail(
          ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_NAME",
          "name \"" + req->name() + "\" is not \"hosts/{host}/vms/{vm}\" (host may be \"-\")",
          {{"field", "name"}});
    }
    const VmConfig* vm = FindVm(context_, vm_name);
    if (vm == nullptr || (host_name != kAny && vm->host != host_name)) {
      if (host_name != kAny && FindHost(context_, host_name) == nullptr) {
        return Fail(ctx, grpc::StatusCode::NOT_FOUND, "HOST_NOT_FOUND",
                    "no host is named \"" + host_name + "\" in offhostd's configuration");
      }
      return Fail(ctx, grpc::StatusCode::NOT_FOUND, "VM_NOT_FOUND",
                  "no VM " + req->name() +
                      " in offhostd's configuration ([[vm]]); list them "
                      "with ListVms (parent \"hosts/-\")");
    }
    Entry e{FindHost(context_, vm->host), vm, std::nullopt};
    DatastoreCache cache(context_);
    FillBasic(context_, cache, e, out);
    if (req->view() != v1::VM_VIEW_FULL) return grpc::Status::OK;
    auto described = DescribeAll(ctx, context_, in_flight_, {e});
    if (!described[0].ok() && described[0].status().code() == StatusCode::kUnavailable) {
      return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "HOST_UNREACHABLE",
                  "host " + e.host->name + " does not answer: " + described[0].status().message(),
                  {{"host", HostResource(e.host->name)}});
    }
    FillFull(described[0], out);
    return grpc::Status::OK;
  }

  grpc::Status ListCredentials(grpc::ServerContext* ctx, const v1::ListCredentialsRequest* req,
                               v1::ListCredentialsResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    OFFHOST_RPC_ASSIGN_OR_RETURN(Page page, ReadPage(*req), ctx, "");
    std::vector<const CredentialConfig*> all;
    for (const CredentialConfig& c : context_.credentials) all.push_back(&c);
    std::sort(all.begin(), all.end(), [](auto* a, auto* b) { return a->name < b->name; });
    for (size_t i = page.begin(all.size()); i < page.end(all.size()); ++i) {
      v1::Credential* c = out->add_credentials();
      c->set_name("credentials/" + all[i]->name);
      c->set_kind(all[i]->kind == "chap"      ? v1::CREDENTIAL_KIND_CHAP
                  : all[i]->kind == "nbd-tls" ? v1::CREDENTIAL_KIND_NBD_TLS
                  : all[i]->kind == "libvirt" ? v1::CREDENTIAL_KIND_LIBVIRT
                                              : v1::CREDENTIAL_KIND_UNSPECIFIED);
      c->set_description(all[i]->description);
    }
    out->set_next_page_token(NextPageToken(*req, page, all.size()));
    return grpc::Status::OK;
  }

  grpc::Status DiscoverIscsiTargets(grpc::ServerContext* ctx,
                                    const v1::DiscoverIscsiTargetsRequest* req,
                                    v1::DiscoverIscsiTargetsResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kOperator, &caller); !st.ok()) return st;
    const HostConfig* host = nullptr;
    if (auto st = LookupHost(ctx, req->host(), "host", &host); !st.ok()) return st;
    if (host->driver != "iscsi") {
      return Fail(ctx, grpc::StatusCode::FAILED_PRECONDITION, "NOT_AN_ISCSI_HOST",
                  "host " + host->name + " uses the " + host->driver +
                      " driver; discovery is for iscsi hosts (SAN portals)");
    }
    std::string portal = IscsiPortal(context_, *host);
    if (portal.empty()) {
      return Fail(
          ctx, grpc::StatusCode::FAILED_PRECONDITION, "NO_PORTAL",
          "host " + host->name +
              " names no portal: set settings.portal = "
              "\"iscsi://ADDRESS\" in its [[host]] or give one of its VMs an iscsi:// disk");
    }
    auto found =
        proxy::DiscoverIscsiPortal(portal, sd::IscsiCredentialsFromSettings(host->settings));
    if (!found.ok() && found.status().code() == StatusCode::kUnavailable) {
      return Fail(ctx, grpc::StatusCode::UNAVAILABLE, "HOST_UNREACHABLE", found.status().message(),
                  {{"host", HostResource(host->name)}});
    }
    if (!found.ok()) return ToGrpc(ctx, found.status(), "HOST_NOT_FOUND");
    for (const sd::IscsiTarget& t : found->targets) {
      v1::IscsiTarget* target = out->add_targets();
      target->set_iqn(t.name);
      for (const auto& p : t.portals) target->add_portals(p);
      target->set_error(t.error);
      for (const sd::IscsiLun& l : t.luns) {
        v1::IscsiLun* lun = target->add_luns();
        lun->set_lun(static_cast<uint32_t>(l.lun));
        lun->set_uri(l.uri);
        lun->set_device_type(l.device_type);
        lun->set_vendor(l.vendor);
        lun->set_product(l.product);
        lun->set_size_bytes(l.size);
        lun->set_block_size_bytes(l.block_size);
        lun->set_thin(l.thin);
        auto volumes = found->volumes.find(l.uri);
        if (volumes == found->volumes.end()) continue;
        for (const mount::LogicalVolumeInfo& v : volumes->second) {
          v1::IscsiLogicalVolume* lv = lun->add_logical_volumes();
          lv->set_volume_group(v.vg);
          lv->set_logical_volume(v.lv);
          lv->set_size_bytes(v.size);
          lv->set_uri(proxy::LogicalVolumeUri(l.uri, v));
          lv->set_unreadable(v.unreadable);
        }
      }
    }
    return grpc::Status::OK;
  }

 private:
  grpc::Status LookupHost(grpc::ServerContext* ctx, const std::string& name,
                          const std::string& field, const HostConfig** host) {
    std::string host_name;
    if (!SplitHostName(name, &host_name) || host_name == kAny) {
      return Fail(ctx, grpc::StatusCode::INVALID_ARGUMENT, "INVALID_NAME",
                  field + " \"" + name + "\" is not \"hosts/{host}\"", {{"field", field}});
    }
    *host = FindHost(context_, host_name);
    if (*host == nullptr) {
      std::vector<std::string> known;
      for (const HostConfig& h : context_.hosts) known.push_back(h.name);
      std::sort(known.begin(), known.end());
      std::string names;
      for (const auto& n : known) names += (names.empty() ? "" : ", ") + n;
      return Fail(ctx, grpc::StatusCode::NOT_FOUND, "HOST_NOT_FOUND",
                  "no host is named \"" + host_name + "\" in offhostd's configuration (hosts: " +
                      (names.empty() ? "none" : names) + ")",
                  {{"host", name}});
    }
    return grpc::Status::OK;
  }

  static bool Matches(const v1::ListVmsRequest& req, const v1::Vm& vm) {
    if (!req.uuid().empty() && Lower(req.uuid()) != vm.uuid()) return false;
    if (!req.hypervisor_name().empty() && req.hypervisor_name() != vm.hypervisor_name() &&
        req.hypervisor_name() != vm.vm_id()) {
      return false;
    }
    return true;
  }

  ServiceContext& context_;
  std::shared_ptr<InFlight> in_flight_ = std::make_shared<InFlight>();
};

}  // namespace

std::unique_ptr<grpc::Service> MakeInventoryService(ServiceContext& context) {
  return std::make_unique<InventoryService>(context);
}

}  // namespace offhost::grpcapi
