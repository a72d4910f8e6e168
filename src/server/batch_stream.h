// Server-streaming variants of the List RPCs (CRI's CRIListStreaming): the items a List call
// would return, moved into a sequence of responses of at least one item each, every item in
// exactly one response, each response well below gRPC's default 4 MiB message limit; then the
// stream ends (EOF). Nothing is sent for an empty list.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>
#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <utility>

namespace crib::server {

// A response carries items until it would exceed this many bytes (a single larger item goes
// alone).
inline constexpr size_t kStreamBatchBytes = 1 << 20;

template <typename Response, typename Item>
grpc::Status WriteInBatches(grpc::ServerContext* context, grpc::ServerWriter<Response>* writer,
                            google::protobuf::RepeatedPtrField<Item>& items,
                            google::protobuf::RepeatedPtrField<Item>* (Response::*field)()) {
  Response batch;
  size_t bytes = 0;
  auto flush = [&]() -> grpc::Status {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    if (!writer->Write(batch)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "the client closed the stream");
    }
    batch.Clear();
    bytes = 0;
    return grpc::Status::OK;
  };
  for (Item& item : items) {
    // The item's bytes plus its tag and length prefix.
    const size_t size = item.ByteSizeLong() + 8;
    if ((batch.*field)()->size() > 0 && bytes + size > kStreamBatchBytes) {
      if (grpc::Status s = flush(); !s.ok()) return s;
    }
    (batch.*field)()->Add(std::move(item));
    bytes += size;
  }
  if ((batch.*field)()->size() > 0) return flush();
  return grpc::Status::OK;
}

}  // namespace crib::server
