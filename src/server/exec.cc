// Exec, Attach and PortForward: each validates its request through the streaming server and
// returns the single-use URL a client then speaks SPDY or WebSocket to (src/stream/).
#include "server/grpc_status.h"
#include "server/runtime_service.h"

namespace crib::server {

grpc::Status RuntimeService::Exec(grpc::ServerContext*, const cri::ExecRequest* request,
                                  cri::ExecResponse* response) {
  stream::ExecRequest exec;
  exec.container_id = request->container_id();
  exec.cmd.assign(request->cmd().begin(), request->cmd().end());
  exec.tty = request->tty();
  exec.stdin = request->stdin();
  exec.stdout = request->stdout();
  exec.stderr = request->stderr();
  absl::StatusOr<std::string> url = deps_.streams.PrepareExec(exec);
  if (!url.ok()) return ToGrpcStatus(url.status());
  response->set_url(*url);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::Attach(grpc::ServerContext*, const cri::AttachRequest* request,
                                    cri::AttachResponse* response) {
  stream::AttachRequest attach;
  attach.container_id = request->container_id();
  attach.tty = request->tty();
  attach.stdin = request->stdin();
  attach.stdout = request->stdout();
  attach.stderr = request->stderr();
  absl::StatusOr<std::string> url = deps_.streams.PrepareAttach(attach);
  if (!url.ok()) return ToGrpcStatus(url.status());
  response->set_url(*url);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::PortForward(grpc::ServerContext*,
                                         const cri::PortForwardRequest* request,
                                         cri::PortForwardResponse* response) {
  stream::PortForwardRequest forward;
  forward.pod_sandbox_id = request->pod_sandbox_id();
  forward.ports.assign(request->port().begin(), request->port().end());
  absl::StatusOr<std::string> url = deps_.streams.PreparePortForward(forward);
  if (!url.ok()) return ToGrpcStatus(url.status());
  response->set_url(*url);
  return grpc::Status::OK;
}

}  // namespace crib::server
