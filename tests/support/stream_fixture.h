// The streaming server's test fixture: a StreamLab with a server started per test, and the
// checks that nothing a test made is left behind (processes, cgroups, network namespaces,
// mounts), also when the test failed.
#pragma once

#include <signal.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/machine.h"
#include "support/status_matchers.h"
#include "support/stream_lab.h"

namespace crib::testing {

class StreamFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    lab_ = std::make_unique<StreamLab>(CRIB_MONITOR_PATH);
    ASSERT_THAT(lab_->StartServer(DefaultOptions()), IsOk());
  }

  void TearDown() override {
    std::vector<int> pids = lab_->pids();
    std::string prefix = lab_->cgroup_prefix();
    lab_.reset();
    for (int pid : pids) EXPECT_TRUE(ExitsWithin(pid)) << "pid " << pid << " still runs";
    for (const char* hierarchy : {"memory", "cpu", "pids", "cpuset"}) {
      for (const auto& entry :
           std::filesystem::directory_iterator(absl::StrCat("/sys/fs/cgroup/", hierarchy))) {
        EXPECT_FALSE(absl::StartsWith(entry.path().filename().string(), prefix)) << entry.path();
      }
    }
    if (std::filesystem::exists("/run/netns")) {
      for (const auto& entry : std::filesystem::directory_iterator("/run/netns")) {
        EXPECT_FALSE(absl::StartsWith(entry.path().filename().string(), prefix)) << entry.path();
      }
    }
    absl::StatusOr<std::string> mounts = ReadFile("/proc/self/mountinfo");
    EXPECT_THAT(mounts.value_or(""), ::testing::Not(::testing::HasSubstr(prefix)));
  }

  static stream::ServerOptions DefaultOptions() {
    stream::ServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    return options;
  }

  stream::Server& server() { return lab_->server(); }
  stream::LauncherBackend& backend() { return lab_->backend(); }
  runtime::Launcher& launcher() { return lab_->launcher(); }
  std::string bundle(const std::string& id) { return lab_->bundle(id); }
  int ProcessCount(const std::string& id) { return lab_->ProcessCount(id); }

  std::string StartContainer(std::vector<std::string> args = {"sleep", "1000"},
                             const runtime::CreateOptions& create = {}, bool terminal = false) {
    absl::StatusOr<std::string> id = lab_->StartContainer(std::move(args), create, terminal);
    EXPECT_THAT(id.status(), IsOk());
    return id.value_or("");
  }
  std::string StartHttpdPod(int port, const std::string& content) {
    absl::StatusOr<std::string> pod = lab_->StartHttpdPod(port, content);
    EXPECT_THAT(pod.status(), IsOk());
    return pod.value_or("");
  }

  std::unique_ptr<StreamLab> lab_;
};

}  // namespace crib::testing
