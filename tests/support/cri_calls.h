// The pod RPCs as the tests call them: one place for their requests and deadlines.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "support/cribd_process.h"

namespace crib::testing {

inline grpc::Status StopPod(cri::RuntimeService::Stub& runtime, const std::string& id) {
  cri::StopPodSandboxRequest request;
  request.set_pod_sandbox_id(id);
  cri::StopPodSandboxResponse response;
  return runtime.StopPodSandbox(ContextWithDeadline(absl::Seconds(60)).get(), request, &response);
}

inline grpc::Status RemovePod(cri::RuntimeService::Stub& runtime, const std::string& id) {
  cri::RemovePodSandboxRequest request;
  request.set_pod_sandbox_id(id);
  cri::RemovePodSandboxResponse response;
  return runtime.RemovePodSandbox(ContextWithDeadline(absl::Seconds(60)).get(), request, &response);
}

// The pods cribd lists (a failed call is a test failure and lists none).
inline std::vector<cri::PodSandbox> ListPods(cri::RuntimeService::Stub& runtime,
                                             const cri::PodSandboxFilter* filter = nullptr) {
  cri::ListPodSandboxRequest request;
  if (filter != nullptr) *request.mutable_filter() = *filter;
  cri::ListPodSandboxResponse response;
  EXPECT_TRUE(runtime.ListPodSandbox(ContextWithDeadline().get(), request, &response).ok());
  return {response.items().begin(), response.items().end()};
}

}  // namespace crib::testing
