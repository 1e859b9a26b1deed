// Errors of the offhost.v1 services: offhost Status codes mapped to gRPC codes, and the
// offhost.v1.ErrorInfo every failed RPC carries (docs/api.md "Errors").
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <string>

#include "offhost/common/status.h"

namespace offhost::grpcapi {

grpc::StatusCode ToGrpcCode(StatusCode code);

// A failed RPC: `reason` (UPPER_SNAKE_CASE, from common.proto's list) and `metadata` go into
// the trailing metadata entry "offhost-error-bin" as a serialized ErrorInfo.
grpc::Status Fail(grpc::ServerContext* ctx, grpc::StatusCode code, const std::string& reason,
                  const std::string& message,
                  const std::map<std::string, std::string>& metadata = {});

// `status` as a gRPC status with its message kept. NOT_FOUND and FAILED_PRECONDITION get the
// reasons given, since only the caller knows what was being looked up (SNAPSHOT_NOT_FOUND vs
// PATH_NOT_FOUND).
grpc::Status ToGrpc(grpc::ServerContext* ctx, const Status& status,
                    const std::string& not_found_reason,
                    const std::string& failed_precondition_reason = "");

// Like OFFHOST_ASSIGN_OR_RETURN, in an RPC handler: a failure returns ToGrpc(ctx, ..., reasons).
#define OFFHOST_RPC_ASSIGN_OR_RETURN(lhs, expr, ctx, ...)                              \
  auto OFFHOST_CONCAT(_rpc_, __LINE__) = (expr);                                       \
  if (!OFFHOST_CONCAT(_rpc_, __LINE__).ok()) {                                         \
    return ::offhost::grpcapi::ToGrpc((ctx), OFFHOST_CONCAT(_rpc_, __LINE__).status(), \
                                      __VA_ARGS__);                                    \
  }                                                                                    \
  lhs = std::move(OFFHOST_CONCAT(_rpc_, __LINE__)).value()

}  // namespace offhost::grpcapi
