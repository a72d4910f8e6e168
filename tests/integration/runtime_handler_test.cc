// Runtime handlers: pods whose containers Debian's runc and crun run, through a real cribd on
// its socket, checked on the machine as crib's own launcher is (container_test.cc): the CRI
// log, exit codes and reasons, OOM kills, signals, ExecSync, limits in the cgroup, updates,
// seccomp's default profile, recovery after kill -9 of cribd, what Status lists; and that an
// unknown handler, or a runtime that fails or hangs, is a clear error that leaves nothing.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/cri_fixture.h"
#include "support/machine.h"

namespace crib::testing {
namespace {

using ::testing::HasSubstr;

std::string RuntimePath(const std::string& handler) {
  return OciRuntimePath(handler, CRIB_SOURCE_DIR);
}

// A stand-in runtime: a shell script that fails every create with a message, or hangs in it.
std::string WriteScript(const std::string& path, const std::string& create_body) {
  std::ofstream(path) << "#!/bin/sh\n"
                         "for a in \"$@\"; do case \"$a\" in\n"
                         "create) "
                      << create_body
                      << " ;;\n"
                         "esac; done\nexit 0\n";
  ::chmod(path.c_str(), 0755);
  return path;
}

class RuntimeHandlerTest : public CriFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(RuntimePath("runc").c_str(), X_OK), 0) << "runc is not installed";
    ASSERT_EQ(::access("/usr/bin/crun", X_OK), 0) << "crun is not installed";
    failing_ = WriteScript(dir_.path() + "/failing-runtime",
                           "echo '{\"level\":\"error\",\"msg\":\"the runtime says no\"}' >&2; "
                           "exit 1");
    hanging_ = WriteScript(dir_.path() + "/hanging-runtime", "exec sleep 600");
    // Sections after the top-level keys: [network] follows them.
    extra_config_ =
        absl::StrCat("[runtimes.runc]\npath = \"", RuntimePath("runc"),
                     "\"\nrecursive_read_only_mounts = true\n", "[runtimes.crun]\npath = \"",
                     RuntimePath("crun"), "\"\n", "[runtimes.failing]\npath = \"", failing_, "\"\n",
                     "[runtimes.hanging]\npath = \"", hanging_, "\"\ntimeout = \"2s\"\n",
                     "[runtimes.absent]\npath = \"", dir_.path(), "/no-such-runtime\"\n");
    CriFixture::SetUp();
  }

  // A pod of `handler` (this test's parameter unless named) on the bridge.
  std::string HandlerPod(const std::string& name, const std::string& handler = "") {
    return RunPod(PodConfig(name, /*host_network=*/false), handler.empty() ? GetParam() : handler);
  }

  // The runtime's own state directory of this test's handler.
  std::string RuntimeState(const std::string& id) const {
    return absl::StrCat(options_.state_dir, "/runtimes/", GetParam(), "/", id);
  }

  // The container's cgroup path, as crib names it.
  std::string CgroupOf(const std::string& pod, const std::string& id) const {
    return absl::StrCat(cgroup_parent_, "/", pod, "/", id);
  }

  std::string failing_, hanging_;
};

TEST_P(RuntimeHandlerTest, RunsContainersWithTheirLogsExitCodesAndReasons) {
  const std::string pod = HandlerPod("life");
  cri::PodSandboxStatusRequest request;
  request.set_pod_sandbox_id(pod);
  cri::PodSandboxStatusResponse response;
  ASSERT_THAT(runtime_->PodSandboxStatus(ContextWithDeadline().get(), request, &response),
              GrpcOk());
  EXPECT_EQ(response.status().runtime_handler(), GetParam());

  const Leftovers before = Count();
  cri::ContainerStatus status;
  EXPECT_EQ(RunToExit(pod, Config("hello", {"sh", "-c", "echo hello; echo oops >&2"}), &status),
            "hello\n");
  EXPECT_THAT(LogRecords(LogPath(pod, "hello")),
              ::testing::UnorderedElementsAre("stdout F hello", "stderr F oops"));
  EXPECT_EQ(status.exit_code(), 0);
  EXPECT_EQ(status.reason(), "Completed");
  EXPECT_GT(status.started_at(), status.created_at());
  // The runtime ran it: its state of the container is there until the removal.
  EXPECT_TRUE(std::filesystem::exists(RuntimeState(status.id()))) << RuntimeState(status.id());
  ASSERT_THAT(RemoveContainer(status.id()), GrpcOk());
  EXPECT_FALSE(std::filesystem::exists(RuntimeState(status.id())));
  EXPECT_EQ(Count(), before) << Describe(Count());

  RunToExit(pod, Config("three", {"sh", "-c", "exit 3"}), &status);
  EXPECT_EQ(status.exit_code(), 3);
  EXPECT_EQ(status.reason(), "Error");
  // An init that a signal kills: 128 + the signal.
  const std::string killed = RunContainer(pod, Config("killed", {"sleep", "600"}));
  const int init_pid =
      std::stoi(Slurp(absl::StrCat(options_.state_dir, "/containers/", killed, "/init.pid")));
  ASSERT_EQ(::kill(init_pid, SIGKILL), 0);
  status = WaitExited(killed);
  EXPECT_EQ(status.exit_code(), 128 + SIGKILL);
  EXPECT_EQ(status.reason(), "Error");
  // An executable that is not there: the runtime's create fails and says why, and leaves
  // nothing (the runtime's cgroups included, also in hierarchies crib does not use).
  const std::string lonely = HandlerPod("lonely");
  const Leftovers empty_pod = Count();
  grpc::Status missing = Create(lonely, Config("missing", {"/no/such/binary"}));
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.error_message(), HasSubstr(GetParam()));
  EXPECT_EQ(Count(), empty_pod) << Describe(Count());
}

TEST_P(RuntimeHandlerTest, MemoryLimitInTheCgroupAndOomKill) {
  const std::string pod = HandlerPod("oom");
  cri::ContainerConfig sleeper = Config("sleeper", {"sleep", "600"});
  sleeper.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(64 << 20);
  const std::string id = RunContainer(pod, sleeper);
  EXPECT_EQ(CgroupMemoryLimit(CgroupOf(pod, id)), std::to_string(64 << 20));
  // UpdateContainerResources reaches the cgroup (through the runtime's update).
  ASSERT_THAT(UpdateMemoryLimit(id, 96 << 20), GrpcOk());
  EXPECT_EQ(CgroupMemoryLimit(CgroupOf(pod, id)), std::to_string(96 << 20));
  EXPECT_EQ(Status(id).status().resources().linux().memory_limit_in_bytes(), 96 << 20);

  cri::ContainerConfig hog = Config("hog", {"sh", "-c", "dd if=/dev/zero of=/dev/null bs=256M"});
  hog.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(32 << 20);
  cri::ContainerStatus status;
  RunToExit(pod, hog, &status);
  EXPECT_EQ(status.exit_code(), 137);
  EXPECT_EQ(status.reason(), "OOMKilled");
}

TEST_P(RuntimeHandlerTest, StopSendsTheStopSignalThenKills) {
  const std::string pod = HandlerPod("stop");
  const std::string trapper =
      RunContainer(pod, Config("trapper", {"sh", "-c",
                                           "trap 'echo got TERM; exit 7' TERM; echo ready; "
                                           "while true; do sleep 0.1; done"}));
  ASSERT_TRUE(WaitFor([&] { return Stdout(pod, "trapper") == "ready\n"; }));
  ASSERT_THAT(StopContainer(trapper, 10), GrpcOk());
  cri::ContainerStatus status = Status(trapper).status();
  EXPECT_EQ(status.state(), cri::CONTAINER_EXITED);
  EXPECT_EQ(status.exit_code(), 7);
  EXPECT_EQ(Stdout(pod, "trapper"), "ready\ngot TERM\n");
  // pid 1 of its own pid namespace ignores SIGTERM: the timeout's SIGKILL ends it.
  const std::string deaf = RunContainer(pod, Config("deaf", {"sh", "-c", "sleep 600"}));
  ASSERT_THAT(StopContainer(deaf, 1), GrpcOk());
  EXPECT_EQ(Status(deaf).status().exit_code(), 137);
}

TEST_P(RuntimeHandlerTest, ExecSyncInTheContainersNamespacesAndCgroup) {
  const std::string pod = HandlerPod("exec");
  const std::string id = RunContainer(pod, Config("target", {"sleep", "600"}));
  cri::ExecSyncResponse out;
  ASSERT_THAT(Exec(id, {"sh", "-c", "echo out; echo err >&2; exit 4"}, &out), GrpcOk());
  EXPECT_EQ(out.stdout(), "out\n");
  EXPECT_EQ(out.stderr(), "err\n");
  EXPECT_EQ(out.exit_code(), 4);
  // The container's pid namespace (its sleep is pid 1) and its cgroup.
  ASSERT_THAT(Exec(id, {"sh", "-c", "cat /proc/1/cmdline; echo; cat /proc/self/cgroup"}, &out),
              GrpcOk());
  EXPECT_THAT(out.stdout(), HasSubstr("sleep"));
  EXPECT_THAT(out.stdout(), HasSubstr(absl::StrCat("memory:", CgroupOf(pod, id))));
  // A timeout kills the process and is DEADLINE_EXCEEDED.
  const absl::Time start = absl::Now();
  EXPECT_EQ(Exec(id, {"sleep", "60"}, &out, 1).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_TRUE(WaitFor([&] { return ProcessesWith("sleep 60").empty(); }));
}

TEST_P(RuntimeHandlerTest, SeccompRuntimeDefaultRefusesUnshare) {
  const std::string pod = HandlerPod("seccomp");
  auto run = [&](const std::string& name, cri::SecurityProfile::ProfileType type) {
    cri::ContainerConfig config =
        Config(name, {"sh", "-c", "unshare -U true 2>&1 && echo allowed || echo refused"});
    config.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_profile_type(type);
    return RunToExit(pod, config);
  };
  EXPECT_THAT(run("default", cri::SecurityProfile::RuntimeDefault), HasSubstr("refused"));
  EXPECT_THAT(run("unconfined", cri::SecurityProfile::Unconfined), HasSubstr("allowed"));
}

TEST_P(RuntimeHandlerTest, ContainersKeepRunningWhenCribdIsKilledAndAreRemovedAfter) {
  const std::string pod = HandlerPod("recover");
  const std::string id = RunContainer(pod, Config("survivor", {"sleep", "600"}));
  const int init_pid =
      std::stoi(Slurp(absl::StrCat(options_.state_dir, "/containers/", id, "/init.pid")));
  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  ASSERT_TRUE(Start());
  EXPECT_FALSE(Exited(init_pid));
  cri::ContainerStatus status = Status(id).status();
  EXPECT_EQ(status.state(), cri::CONTAINER_RUNNING);
  cri::ExecSyncResponse out;
  ASSERT_THAT(Exec(id, {"echo", "still here"}, &out), GrpcOk());
  EXPECT_EQ(out.stdout(), "still here\n");
  ASSERT_THAT(StopContainer(id, 0), GrpcOk());
  EXPECT_TRUE(ExitsWithin(init_pid));
  ASSERT_THAT(RemoveContainer(id), GrpcOk());
  EXPECT_FALSE(std::filesystem::exists(RuntimeState(id)));
}

TEST_P(RuntimeHandlerTest, StatusListsTheHandlers) {
  cri::StatusRequest request;
  cri::StatusResponse response;
  ASSERT_THAT(runtime_->Status(ContextWithDeadline().get(), request, &response), GrpcOk());
  std::map<std::string, bool> rro;
  for (const cri::RuntimeHandler& h : response.runtime_handlers()) {
    rro[h.name()] = h.features().recursive_read_only_mounts();
    // Only crib's own launcher runs pods in user namespaces (where the kernel allows).
    if (h.name() != "" && h.name() != "crib") {
      EXPECT_FALSE(h.features().user_namespaces()) << h.name();
    }
  }
  EXPECT_THAT(rro, ::testing::UnorderedElementsAre(
                       ::testing::Key(""), ::testing::Key("crib"), ::testing::Key("runc"),
                       ::testing::Key("crun"), ::testing::Key("failing"), ::testing::Key("hanging"),
                       ::testing::Key("absent")));
  EXPECT_EQ(rro["runc"], rro["crib"]);  // configured as supported: as the kernel allows
  EXPECT_FALSE(rro["crun"]);            // not configured
}

TEST_P(RuntimeHandlerTest, AnUnknownHandlerIsRefusedNamingTheConfiguredOnes) {
  const Leftovers before = Count();
  const int pins = PinsIn(options_.state_dir);
  cri::RunPodSandboxRequest request;
  *request.mutable_config() = PodConfig("unknown", /*host_network=*/false);
  request.set_runtime_handler("kata");
  cri::RunPodSandboxResponse response;
  grpc::Status status =
      runtime_->RunPodSandbox(ContextWithDeadline(absl::Seconds(30)).get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("runtime handler \"kata\" is not configured"));
  EXPECT_THAT(status.error_message(), HasSubstr("\"runc\""));
  EXPECT_THAT(status.error_message(), HasSubstr("\"crun\""));
  EXPECT_TRUE(ListPods().empty());
  EXPECT_EQ(PinsIn(options_.state_dir), pins);
  EXPECT_EQ(Count(), before) << Describe(Count());
  // crib's own launcher answers to "" and to its name.
  const std::string own = HandlerPod("own", "crib");
  EXPECT_EQ(RunToExit(own, Config("hello", {"echo", "hello"})), "hello\n");
}

TEST_P(RuntimeHandlerTest, ARuntimeThatFailsOrHangsLeavesNothing) {
  for (const std::string handler : {"failing", "hanging", "absent"}) {
    SCOPED_TRACE(handler);
    const std::string pod = HandlerPod(handler, handler);
    const Leftovers before = Count();
    const absl::Time start = absl::Now();
    grpc::Status status = Create(pod, Config("victim", {"sleep", "600"}));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
    EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat("runtime handler ", handler)));
    if (handler == "failing") {
      EXPECT_THAT(status.error_message(), HasSubstr("create failed (exit code 1)"));
      EXPECT_THAT(status.error_message(), HasSubstr("the runtime says no"));
    } else if (handler == "absent") {
      EXPECT_THAT(status.error_message(), HasSubstr("no-such-runtime: no such file or directory"));
    } else {
      EXPECT_THAT(status.error_message(), HasSubstr("no answer in 2000 ms, killed"));
      EXPECT_LT(absl::Now() - start, absl::Seconds(30));
    }
    EXPECT_TRUE(WaitFor([&] { return Count() == before; })) << Describe(Count());
    EXPECT_TRUE(ProcessesWith("sleep 600").empty());
    EXPECT_TRUE(ProcessesWith(hanging_).empty());
  }
}

INSTANTIATE_TEST_SUITE_P(Handlers, RuntimeHandlerTest, ::testing::Values("runc", "crun"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace crib::testing
