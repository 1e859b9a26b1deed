// offhost.v1 SystemService (system.proto): what this daemon is, and who the caller is to it.
#include <unistd.h>

#include <chrono>

#include "file_info.h"
#include "offhost/snapshot-drivers/driver.h"
#include "offhost/v1/system.grpc.pb.h"
#include "services.h"
#include "snapshots.h"

namespace offhost::grpcapi {
namespace {

// Optional features (SystemInfo.features) whose RPCs this build serves.
constexpr const char* kFeatures[] = {"catalog", "export"};

std::string Hostname() {
  char name[256] = {};
  return ::gethostname(name, sizeof name - 1) == 0 ? name : "";
}

// DescribeDrivers() gives "name: summary" lines.
void FillDrivers(v1::SystemInfo* out) {
  for (const std::string& line : snapshot_drivers::DescribeDrivers()) {
    size_t colon = line.find(": ");
    auto* d = out->add_drivers();
    d->set_id(line.substr(0, colon));
    if (colon != std::string::npos) d->set_summary(line.substr(colon + 2));
    d->set_driver(DriverOf(d->id()));
  }
}

v1::AuthMethod AuthMethodOf(const std::string& method) {
  if (method == "token") return v1::AUTH_METHOD_BEARER_TOKEN;
  if (method == "unix-peer") return v1::AUTH_METHOD_UNIX_PEER;
  return v1::AUTH_METHOD_UNSPECIFIED;
}

void FillPrincipal(const Principal& p, v1::WhoAmIResponse* out) {
  auto* principal = out->mutable_principal();
  principal->set_name(p.name);
  principal->set_role(static_cast<v1::Role>(p.role));  // the same numbers by design
  principal->set_auth_method(AuthMethodOf(p.method));
  principal->set_client_certificate_subject(p.client_certificate_subject);
  principal->set_peer(p.peer);
  if (p.token_expires) SetTime(p.token_expires, out->mutable_token_expire_time());
  if (p.client_certificate_expires) {
    SetTime(p.client_certificate_expires, out->mutable_client_certificate_expire_time());
  }
}

class SystemService final : public v1::SystemService::Service {
 public:
  explicit SystemService(ServiceContext& context) : context_(context) {}

  grpc::Status GetSystemInfo(grpc::ServerContext* ctx, const v1::GetSystemInfoRequest*,
                             v1::SystemInfo* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    out->set_version(context_.version);
    out->set_api_version("offhost.v1");
    out->set_hostname(Hostname());
    SetTime(std::chrono::system_clock::to_time_t(context_.start_time), out->mutable_start_time());
    FillDrivers(out);
    for (const char* f : kFeatures) out->add_features(f);
    return grpc::Status::OK;
  }

  grpc::Status WhoAmI(grpc::ServerContext* ctx, const v1::WhoAmIRequest*,
                      v1::WhoAmIResponse* out) override {
    Principal caller;
    if (auto st = context_.authorizer->Check(ctx, Role::kReadOnly, &caller); !st.ok()) return st;
    FillPrincipal(caller, out);
    return grpc::Status::OK;
  }

 private:
  ServiceContext& context_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeSystemService(ServiceContext& context) {
  return std::make_unique<SystemService>(context);
}

}  // namespace offhost::grpcapi
