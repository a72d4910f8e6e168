// The one place where crib's absl::Status becomes a gRPC status for the client.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace crib::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace crib::server
