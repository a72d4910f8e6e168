// Conversions the server's files share: the room's plain values into CRI status messages
// (PodSandboxStatus and ContainerStatus answer with them, and so does GetContainerEvents).
#pragma once

#include "container/container.h"
#include "pod/sandbox.h"
#include "server/dependencies.h"

namespace crib::server {

void FillPodSandboxStatus(const pod::PodSandbox& pod, cri::PodSandboxStatus* status);
void FillContainerStatus(const container::Container& container, cri::ContainerStatus* status);

}  // namespace crib::server
