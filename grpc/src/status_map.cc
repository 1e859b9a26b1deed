#include "status_map.h"

#include "offhost/v1/common.pb.h"

namespace offhost::grpcapi {

grpc::StatusCode ToGrpcCode(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return grpc::StatusCode::OK;
    case StatusCode::kNotFound:
      return grpc::StatusCode::NOT_FOUND;
    case StatusCode::kInvalidArgument:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case StatusCode::kFailedPrecondition:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case StatusCode::kCorruption:
      return grpc::StatusCode::DATA_LOSS;
    case StatusCode::kUnavailable:
      return grpc::StatusCode::UNAVAILABLE;
    default:
      return grpc::StatusCode::INTERNAL;
  }
}

grpc::Status Fail(grpc::ServerContext* ctx, grpc::StatusCode code, const std::string& reason,
                  const std::string& message, const std::map<std::string, std::string>& metadata) {
  offhost::v1::ErrorInfo info;
  info.set_reason(reason);
  info.mutable_metadata()->insert(metadata.begin(), metadata.end());
  ctx->AddTrailingMetadata("offhost-error-bin", info.SerializeAsString());
  return grpc::Status(code, message);
}

grpc::Status ToGrpc(grpc::ServerContext* ctx, const Status& status,
                    const std::string& not_found_reason,
                    const std::string& failed_precondition_reason) {
  if (status.ok()) return grpc::Status::OK;
  grpc::StatusCode code = ToGrpcCode(status.code());
  // The storage layer's other errors have one meaning each, or none a client could act on
  // (reason left empty: the code says it all).
  std::string reason = code == grpc::StatusCode::NOT_FOUND             ? not_found_reason
                       : code == grpc::StatusCode::FAILED_PRECONDITION ? failed_precondition_reason
                       : code == grpc::StatusCode::INVALID_ARGUMENT    ? "INVALID_ARGUMENT"
                       : code == grpc::StatusCode::DATA_LOSS           ? "CHUNK_DAMAGED"
                                                                       : "";
  return Fail(ctx, code, reason, status.message());
}

}  // namespace offhost::grpcapi
