#include "gtest/gtest.h"
#include "server/grpc_status.h"

namespace crib::server {
namespace {

TEST(ToGrpcStatus, KeepsCodeAndMessage) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  const std::pair<absl::Status, grpc::StatusCode> cases[] = {
      {absl::NotFoundError("pod p not found"), grpc::StatusCode::NOT_FOUND},
      {absl::AlreadyExistsError("name taken"), grpc::StatusCode::ALREADY_EXISTS},
      {absl::InvalidArgumentError("bad"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::FailedPreconditionError("not ready"), grpc::StatusCode::FAILED_PRECONDITION},
      {absl::DeadlineExceededError("late"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::UnavailableError("down"), grpc::StatusCode::UNAVAILABLE},
      {absl::UnauthenticatedError("who"), grpc::StatusCode::UNAUTHENTICATED},
      {absl::PermissionDeniedError("no"), grpc::StatusCode::PERMISSION_DENIED},
      {absl::ResourceExhaustedError("full"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::UnimplementedError("later"), grpc::StatusCode::UNIMPLEMENTED},
      {absl::InternalError("oops"), grpc::StatusCode::INTERNAL},
  };
  for (const auto& [in, code] : cases) {
    const grpc::Status out = ToGrpcStatus(in);
    EXPECT_EQ(out.error_code(), code) << in;
    EXPECT_EQ(out.error_message(), in.message());
  }
}

}  // namespace
}  // namespace crib::server
