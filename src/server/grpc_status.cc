#include "server/grpc_status.h"

#include <string>

#include "common/errors.h"

namespace crib::server {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // The code a client may rely on (common/errors.h); absl and gRPC share the canonical code
  // numbering (OK=0 ... UNAUTHENTICATED=16).
  return grpc::Status(static_cast<grpc::StatusCode>(ClientCode(status)),
                      std::string(status.message()));
}

}  // namespace crib::server
