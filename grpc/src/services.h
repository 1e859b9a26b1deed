// The offhost.v1 services MakeServices() returns, one factory each (grpc/src/*_service.cc).
#pragma once

#include <memory>

#include "offhost/grpc/service_context.h"

namespace offhost::grpcapi {

std::unique_ptr<grpc::Service> MakeSystemService(ServiceContext& context);
std::unique_ptr<grpc::Service> MakeCatalogService(ServiceContext& context);
std::unique_ptr<grpc::Service> MakeDatastoreService(ServiceContext& context);
std::unique_ptr<grpc::Service> MakeJobsService(ServiceContext& context);
std::unique_ptr<grpc::Service> MakeBackupService(ServiceContext& context);
std::unique_ptr<grpc::Service> MakeRestoreService(ServiceContext& context);
std::unique_ptr<grpc::Service> MakeInventoryService(ServiceContext& context);
std::unique_ptr<grpc::Service> MakeExportService(ServiceContext& context);
std::unique_ptr<grpc::Service> MakeScheduleService(ServiceContext& context);

}  // namespace offhost::grpcapi
