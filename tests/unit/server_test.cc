#include <cerrno>

#include "common/errors.h"
#include "gtest/gtest.h"
#include "server/grpc_status.h"

namespace crib::server {
namespace {

TEST(ToGrpcStatus, KeepsCodeAndMessage) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  const std::pair<absl::Status, grpc::StatusCode> cases[] = {
      {CriNotFound("pod sandbox p not found"), grpc::StatusCode::NOT_FOUND},
      {Annotate(CriNotFound("container c not found"), "stop"), grpc::StatusCode::NOT_FOUND},
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

// An errno's code, and a NotFound that is not about the object asked for, mean nothing to the
// client: kubelet reads NOT_FOUND as "the container is gone".
TEST(ToGrpcStatus, CodesAreDecidedWhereTheMeaningIsKnown) {
  const std::pair<absl::Status, grpc::StatusCode> cases[] = {
      {ErrnoStatus(ENOENT, "open /etc/x"), grpc::StatusCode::INTERNAL},
      {Annotate(ErrnoStatus(EEXIST, "mkdir /y"), "create"), grpc::StatusCode::INTERNAL},
      {ErrnoStatus(EINVAL, "mount"), grpc::StatusCode::INTERNAL},
      {ErrnoStatus(EOPNOTSUPP, "write cpu.max"), grpc::StatusCode::INTERNAL},
      {ErrnoStatus(ENOSPC, "write layer"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {ErrnoStatus(EDQUOT, "write layer"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::NotFoundError("no exit file"), grpc::StatusCode::INTERNAL},
      {WithCode(ErrnoStatus(ENOENT, "read profile"), absl::StatusCode::kFailedPrecondition),
       grpc::StatusCode::FAILED_PRECONDITION},
      {WithCode(CriNotFound("image x not found"), absl::StatusCode::kInternal),
       grpc::StatusCode::INTERNAL},
  };
  for (const auto& [in, code] : cases) {
    const grpc::Status out = ToGrpcStatus(in);
    EXPECT_EQ(out.error_code(), code) << in;
    EXPECT_EQ(out.error_message(), in.message());
  }
}

}  // namespace
}  // namespace crib::server
