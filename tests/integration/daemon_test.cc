// cribd as a client sees it: a real daemon on a temporary socket, root and state dir.
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/status_matchers.h"

namespace crib::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class DaemonTest : public ::testing::Test {
 protected:
  std::unique_ptr<CribdProcess> StartCribd(CribdOptions options) {
    absl::StatusOr<std::unique_ptr<CribdProcess>> cribd = CribdProcess::Start(options);
    EXPECT_THAT(cribd, IsOk());
    return cribd.ok() ? std::move(*cribd) : nullptr;
  }

  // What a test's cribd started ends with it (its cribd is gone by now): no process names the
  // test's directory.
  void TearDown() override {
    EXPECT_TRUE(WaitFor([&] { return ProcessesWith(dir_.path()).empty(); }))
        << "a process still names " << dir_.path();
  }

  TempDir dir_;
  CribdOptions options_ = CribdProcess::OptionsIn(dir_.path());
};

TEST_F(DaemonTest, VersionNamesCribAndItsBuild) {
  auto cribd = StartCribd(options_);
  ASSERT_NE(cribd, nullptr);
  cri::VersionRequest request;
  request.set_version("0.1.0");
  cri::VersionResponse response;
  ASSERT_TRUE(cribd->Runtime()->Version(ContextWithDeadline().get(), request, &response).ok());
  EXPECT_EQ(response.runtime_name(), "crib");
  EXPECT_EQ(response.runtime_api_version(), "v1");
  EXPECT_EQ(response.version(), "0.1.0");
  EXPECT_THAT(response.runtime_version(), StartsWith(absl::StrCat(kProjectVersion, "+")));
  EXPECT_EQ(response.runtime_version(), kRuntimeVersion);
}

TEST_F(DaemonTest, StatusReportsBothConditionsHonestly) {
  auto cribd = StartCribd(options_);
  ASSERT_NE(cribd, nullptr);
  cri::StatusRequest request;
  cri::StatusResponse response;
  ASSERT_TRUE(cribd->Runtime()->Status(ContextWithDeadline().get(), request, &response).ok());
  ASSERT_EQ(response.status().conditions_size(), 2);
  const cri::RuntimeCondition& runtime = response.status().conditions(0);
  const cri::RuntimeCondition& network = response.status().conditions(1);
  EXPECT_EQ(runtime.type(), "RuntimeReady");
  // This machine has overlayfs and cgroup cpu, memory and pids: the check must say so.
  EXPECT_TRUE(runtime.status()) << runtime.reason() << ": " << runtime.message();
  EXPECT_EQ(runtime.reason(), "RuntimeIsReady");
  EXPECT_THAT(runtime.message(), HasSubstr(options_.root_dir));
  EXPECT_EQ(network.type(), "NetworkReady");
  // The built-in bridge backend can work here (root, nftables, bridges): it says so without
  // creating anything.
  EXPECT_TRUE(network.status()) << network.reason() << ": " << network.message();
  EXPECT_TRUE(response.info().empty()) << "info is only for verbose";
}

TEST_F(DaemonTest, RuntimeReadyTurnsFalseWhenTheRootIsNotWritable) {
  auto cribd = StartCribd(options_);
  ASSERT_NE(cribd, nullptr);
  // Root bypasses permission bits, so make the directory read-only in another way: a
  // read-only bind mount of itself, removed whatever the outcome.
  absl::Cleanup unmount = [this] { ::umount2(options_.root_dir.c_str(), MNT_DETACH); };
  ASSERT_EQ(
      ::mount(options_.root_dir.c_str(), options_.root_dir.c_str(), nullptr, MS_BIND, nullptr), 0);
  ASSERT_EQ(::mount(nullptr, options_.root_dir.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY,
                    nullptr),
            0);
  cri::StatusResponse response;
  const grpc::Status status =
      cribd->Runtime()->Status(ContextWithDeadline().get(), cri::StatusRequest(), &response);
  ASSERT_TRUE(status.ok());
  const cri::RuntimeCondition& runtime = response.status().conditions(0);
  EXPECT_FALSE(runtime.status());
  EXPECT_EQ(runtime.reason(), "DirectoryNotWritable");
  EXPECT_THAT(runtime.message(), HasSubstr(options_.root_dir));
}

TEST_F(DaemonTest, VerboseStatusCarriesTheEffectiveConfig) {
  options_.config_text = "log_level = \"warn\"\nshutdown_timeout = \"7s\"\n";
  options_.extra_args = {"--log-level", "error"};
  auto cribd = StartCribd(options_);
  ASSERT_NE(cribd, nullptr);
  cri::StatusRequest request;
  request.set_verbose(true);
  cri::StatusResponse response;
  ASSERT_TRUE(cribd->Runtime()->Status(ContextWithDeadline().get(), request, &response).ok());
  ASSERT_TRUE(response.info().contains("config"));
  const nlohmann::json config = nlohmann::json::parse(response.info().at("config"));
  EXPECT_EQ(config["socket"], options_.socket);
  EXPECT_EQ(config["root_dir"], options_.root_dir);
  EXPECT_EQ(config["state_dir"], options_.state_dir);
  EXPECT_EQ(config["log_level"], "error") << "the flag overrides the file";
  EXPECT_EQ(config["shutdown_timeout"], "7s") << "the file overrides the default";
}

TEST_F(DaemonTest, RuntimeConfigReportsTheCgroupDriverOnlyWhenItWorks) {
  {
    auto cribd = StartCribd(options_);
    ASSERT_NE(cribd, nullptr);
    cri::RuntimeConfigResponse response;
    ASSERT_TRUE(
        cribd->Runtime()
            ->RuntimeConfig(ContextWithDeadline().get(), cri::RuntimeConfigRequest(), &response)
            .ok());
    EXPECT_EQ(response.linux().cgroup_driver(), cri::CgroupDriver::CGROUPFS);
    EXPECT_EQ(WEXITSTATUS(cribd->SignalAndWait(SIGTERM)), 0);
  }
  // With the systemd driver and no systemd to answer (a bus address where nothing listens,
  // whatever this machine runs), crib claims neither driver and is not ready, saying why.
  // (Under a real systemd: tests/systemd/crib_service_test.py.)
  options_.config_text = "cgroup_driver = \"systemd\"\n";
  ::setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/crib-test-bus", 1);
  auto cribd = StartCribd(options_);
  ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
  ASSERT_NE(cribd, nullptr);
  cri::RuntimeConfigResponse response;
  const grpc::Status config = cribd->Runtime()->RuntimeConfig(
      ContextWithDeadline().get(), cri::RuntimeConfigRequest(), &response);
  EXPECT_EQ(config.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(config.error_message(), HasSubstr("systemd does not answer"));
  cri::StatusResponse status;
  ASSERT_TRUE(
      cribd->Runtime()->Status(ContextWithDeadline().get(), cri::StatusRequest(), &status).ok());
  ASSERT_GE(status.status().conditions_size(), 1);
  EXPECT_EQ(status.status().conditions(0).type(), "RuntimeReady");
  EXPECT_FALSE(status.status().conditions(0).status());
  EXPECT_EQ(status.status().conditions(0).reason(), "SystemdUnreachable");
}

TEST_F(DaemonTest, UnimplementedRpcsNameThemselves) {
  auto cribd = StartCribd(options_);
  ASSERT_NE(cribd, nullptr);
  cri::CheckpointContainerResponse checkpoint;
  grpc::Status status = cribd->Runtime()->CheckpointContainer(
      ContextWithDeadline().get(), cri::CheckpointContainerRequest(), &checkpoint);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(status.error_message(), HasSubstr("CheckpointContainer"));
  cri::RestorePodResponse restore;
  status =
      cribd->Runtime()->RestorePod(ContextWithDeadline().get(), cri::RestorePodRequest(), &restore);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(status.error_message(), HasSubstr("RestorePod"));
}

TEST_F(DaemonTest, SocketIsPrivateToOwnerAndGroup) {
  auto cribd = StartCribd(options_);
  ASSERT_NE(cribd, nullptr);
  struct stat st;
  ASSERT_EQ(::stat(options_.socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(DaemonTest, MissingSocketDirectoryIsCreated) {
  options_.socket = dir_.path() + "/deeper/sock/dir/crib.sock";
  auto cribd = StartCribd(options_);
  ASSERT_NE(cribd, nullptr);
  struct stat st;
  EXPECT_EQ(::stat(options_.socket.c_str(), &st), 0);
}

TEST_F(DaemonTest, DebugLogHasOneLinePerRpcWithLatencyAndIds) {
  options_.extra_args = {"--log-level", "debug"};
  auto cribd = StartCribd(options_);
  ASSERT_NE(cribd, nullptr);
  cri::VersionResponse version;
  ASSERT_TRUE(
      cribd->Runtime()->Version(ContextWithDeadline().get(), cri::VersionRequest(), &version).ok());
  cri::ContainerStatusRequest request;
  request.set_container_id("4f2a9c");
  cri::ContainerStatusResponse response;
  cribd->Runtime()->ContainerStatus(ContextWithDeadline().get(), request, &response);
  // The log line is written when the status is sent; give the server thread a moment.
  std::string log;
  for (int i = 0; i < 200; ++i) {
    log = cribd->Log();
    if (log.find("rpc ContainerStatus") != std::string::npos) break;
    usleep(10000);
  }
  EXPECT_THAT(log, HasSubstr("rpc Version ok in "));
  EXPECT_THAT(log, AllOf(HasSubstr("rpc ContainerStatus failed in "),
                         HasSubstr("container_id=4f2a9c: NOT_FOUND")));
}

TEST_F(DaemonTest, SigtermStopsGracefullyAndRemovesTheSocket) {
  for (int signal : {SIGTERM, SIGINT}) {
    auto cribd = StartCribd(options_);
    ASSERT_NE(cribd, nullptr);
    const int status = cribd->SignalAndWait(signal);
    ASSERT_TRUE(WIFEXITED(status)) << "signal " << signal << " killed it: " << cribd->Log();
    EXPECT_EQ(WEXITSTATUS(status), 0) << cribd->Log();
    EXPECT_NE(::access(options_.socket.c_str(), F_OK), 0) << "socket left behind";
    EXPECT_THAT(cribd->Log(), HasSubstr("cribd stopped"));
  }
}

TEST_F(DaemonTest, SecondInstanceOnTheSameStateDirIsRefused) {
  auto first = StartCribd(options_);
  ASSERT_NE(first, nullptr);
  CribdOptions second = options_;
  second.socket = dir_.path() + "/other.sock";
  second.root_dir = dir_.path() + "/other-root";
  auto [code, log] = CribdProcess::RunToExit(second);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, AllOf(HasSubstr(absl::StrCat("another cribd (pid ", first->pid(), ")")),
                         HasSubstr(options_.state_dir + "/cribd.lock")));
  // The first one is untouched and still serves.
  cri::VersionResponse version;
  EXPECT_TRUE(
      first->Runtime()->Version(ContextWithDeadline().get(), cri::VersionRequest(), &version).ok());
}

TEST_F(DaemonTest, SecondInstanceOnTheSameRootDirIsRefused) {
  auto first = StartCribd(options_);
  ASSERT_NE(first, nullptr);
  CribdOptions second = options_;
  second.state_dir = dir_.path() + "/other-state";
  second.socket = dir_.path() + "/other-state/crib.sock";
  auto [code, log] = CribdProcess::RunToExit(second);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, HasSubstr(options_.root_dir + "/cribd.lock"));
}

TEST_F(DaemonTest, ALiveSocketOfAnotherServerIsNotTakenOver) {
  auto first = StartCribd(options_);
  ASSERT_NE(first, nullptr);
  CribdOptions second = CribdProcess::OptionsIn(dir_.path() + "/second");
  second.socket = options_.socket;
  auto [code, log] = CribdProcess::RunToExit(second);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, HasSubstr("is served by another process"));
  cri::VersionResponse version;
  EXPECT_TRUE(
      first->Runtime()->Version(ContextWithDeadline().get(), cri::VersionRequest(), &version).ok());
}

TEST_F(DaemonTest, StaleSocketAfterACrashIsReplaced) {
  {
    auto cribd = StartCribd(options_);
    ASSERT_NE(cribd, nullptr);
    cribd->SignalAndWait(SIGKILL);
  }
  struct stat st;
  ASSERT_EQ(::stat(options_.socket.c_str(), &st), 0) << "SIGKILL leaves the socket file";
  auto cribd = StartCribd(options_);
  ASSERT_NE(cribd, nullptr);
  cri::VersionResponse version;
  EXPECT_TRUE(
      cribd->Runtime()->Version(ContextWithDeadline().get(), cri::VersionRequest(), &version).ok());
}

TEST_F(DaemonTest, AFileInPlaceOfTheSocketIsNotRemoved) {
  ASSERT_EQ(::mkdir(options_.state_dir.c_str(), 0700), 0);
  ASSERT_EQ(::system(absl::StrCat("echo precious > ", options_.socket).c_str()), 0);
  auto [code, log] = CribdProcess::RunToExit(options_);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, HasSubstr("exists and is not a socket"));
  struct stat st;
  ASSERT_EQ(::stat(options_.socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(DaemonTest, BadConfigurationIsRejectedAtStartNamingTheKey) {
  options_.config_text = "socket = \"/run/x.sock\"\nmystery_key = 1\n";
  auto [code, log] = CribdProcess::RunToExit(options_);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, AllOf(HasSubstr("key mystery_key"), HasSubstr("unknown key")));

  options_.config_text = "cgroup_driver = \"cgroupv9\"\n";
  std::tie(code, log) = CribdProcess::RunToExit(options_);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, AllOf(HasSubstr("key cgroup_driver"), HasSubstr("cgroupv9")));

  options_.config_text = std::nullopt;
  options_.extra_args = {"--log-level", "chatty"};
  std::tie(code, log) = CribdProcess::RunToExit(options_);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, AllOf(HasSubstr("log_level"), HasSubstr("chatty")));

  options_.extra_args = {"--config", dir_.path() + "/absent.toml"};
  std::tie(code, log) = CribdProcess::RunToExit(options_);
  EXPECT_EQ(code, 1);
  EXPECT_THAT(log, HasSubstr("absent.toml"));
  EXPECT_NE(::access(options_.socket.c_str(), F_OK), 0) << "nothing served on bad config";
}

TEST_F(DaemonTest, PrintDefaultConfigPrintsTheShippedSample) {
  options_.extra_args = {"--print-default-config"};
  auto [code, out] = CribdProcess::RunToExit(options_);
  EXPECT_EQ(code, 0);
  const std::string shipped = *ReadFile(CRIB_SOURCE_DIR "/etc/config.toml");
  EXPECT_EQ(out, shipped);
}

}  // namespace
}  // namespace crib::testing
