// The StreamBackend over crib's launcher: exec through `crib-monitor exec` (the container's
// namespaces, cgroup and security settings, as ExecSync), attach through the container's
// monitor, port forwarding by dialing inside the pod's network namespace. Which bundle a
// container has and which network namespace a pod sandbox has is the caller's to say.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/launcher.h"
#include "stream/backend.h"

namespace crib::stream {

class LauncherBackend : public StreamBackend {
 public:
  // Called from the RPC threads and the streaming server's connection threads at once.
  struct Resolvers {
    // The bundle directory of a container; NotFound when there is no such container.
    std::function<absl::StatusOr<std::string>(absl::string_view container_id)> container_bundle;
    // The network namespace (a path such as /run/crib/netns/<id>, or "" for the host's) of a
    // pod sandbox; NotFound when there is no such sandbox, FailedPrecondition when it is not
    // ready.
    std::function<absl::StatusOr<std::string>(absl::string_view pod_sandbox_id)> sandbox_netns;
  };

  // `launcher` must outlive this backend.
  LauncherBackend(const runtime::Launcher& launcher, Resolvers resolvers)
      : launcher_(launcher), resolvers_(std::move(resolvers)) {}

  absl::Status CheckContainer(absl::string_view container_id) override;
  absl::Status CheckPodSandbox(absl::string_view pod_sandbox_id) override;
  absl::StatusOr<std::unique_ptr<ContainerStreams>> Exec(const ExecRequest& request) override;
  absl::StatusOr<std::unique_ptr<ContainerStreams>> Attach(const AttachRequest& request) override;
  absl::StatusOr<UniqueFd> DialPort(absl::string_view pod_sandbox_id, int port) override;

 private:
  // The bundle of a running container.
  absl::StatusOr<std::string> RunningBundle(absl::string_view container_id);

  const runtime::Launcher& launcher_;
  Resolvers resolvers_;
};

}  // namespace crib::stream
