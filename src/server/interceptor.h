// The instrumented edge of every RPC, in one place rather than in each handler: a debug line
// per call with its latency and the ids it touched, a warning with the cause for each failure,
// a message that names the RPC when it is not implemented yet, and each call's latency and
// error code in the metrics registry (cribd_grpc_request_*).
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>

namespace crib::server {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcLogInterceptorFactory();

}  // namespace crib::server
