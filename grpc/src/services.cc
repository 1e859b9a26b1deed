#include "services.h"

namespace offhost::grpcapi {

const char* RoleName(Role role) {
  switch (role) {
    case Role::kReadOnly:
      return "read-only";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::vector<std::unique_ptr<grpc::Service>> MakeServices(ServiceContext& context) {
  std::vector<std::unique_ptr<grpc::Service>> services;
  services.push_back(MakeSystemService(context));
  services.push_back(MakeCatalogService(context));
  services.push_back(MakeDatastoreService(context));
  services.push_back(MakeJobsService(context));
  services.push_back(MakeBackupService(context));
  services.push_back(MakeRestoreService(context));
  services.push_back(MakeInventoryService(context));
  services.push_back(MakeExportService(context));
  services.push_back(MakeScheduleService(context));
  return services;
}

}  // namespace offhost::grpcapi
