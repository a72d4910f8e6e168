// Interoperability of the streaming server with clients crib did not write: Node.js with the
// npm packages spdy-transport (SPDY/3.1) and ws (WebSocket), installed by this test into the
// build tree (npm ci from tests/stream/package-lock.json). A failed install fails the tests;
// nothing is skipped. The clients are tests/stream/client.js.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/status_matchers.h"
#include "support/stream_fixture.h"

extern char** environ;

namespace crib::stream {
namespace {

using ::crib::testing::IsOk;
using ::testing::HasSubstr;

const std::string kNodeDir = CRIB_BINARY_DIR "/tests/stream-node";
const std::string kClient = CRIB_SOURCE_DIR "/tests/stream/client.js";

// Runs `argv` with the environment plus `env`; returns its exit code, stdout and stderr.
struct RunResult {
  int code = -1;
  std::string out, err;
};
RunResult RunProgram(const std::vector<std::string>& argv,
                     const std::vector<std::string>& env = {}) {
  RunResult result;
  std::string err_path = absl::StrCat(kNodeDir, "/stderr.", ::getpid());
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return result;
  int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  std::vector<std::string> environment(env);
  for (char** e = environ; *e != nullptr; ++e) environment.emplace_back(*e);
  std::vector<char*> args, envp;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const std::string& e : environment) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_fd);
  if (rc != 0) {
    ::close(out_pipe[0]);
    result.err = absl::StrCat("spawn ", argv[0], ": ", std::strerror(rc));
    return result;
  }
  char buf[65536];
  ssize_t n;
  while ((n = ::read(out_pipe[0], buf, sizeof(buf))) > 0) result.out.append(buf, n);
  ::close(out_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.err = ReadFile(err_path).value_or("");
  std::filesystem::remove(err_path);
  return result;
}

// npm ci into the build tree, once per test program.
const absl::Status& NodeModules() {
  static const absl::Status* status = [] {
    std::filesystem::create_directories(kNodeDir);
    for (const char* file : {"package.json", "package-lock.json"}) {
      std::filesystem::copy_file(absl::StrCat(CRIB_SOURCE_DIR, "/tests/stream/", file),
                                 absl::StrCat(kNodeDir, "/", file),
                                 std::filesystem::copy_options::overwrite_existing);
    }
    auto installed = [] {
      for (const auto& [module, version] :
           {std::pair<const char*, const char*>{"spdy-transport", "3.0.0"}, {"ws", "8.18.0"}}) {
        absl::StatusOr<std::string> meta =
            ReadFile(absl::StrCat(kNodeDir, "/node_modules/", module, "/package.json"));
        if (!meta.ok() ||
            !absl::StrContains(*meta, absl::StrCat("\"version\": \"", version, "\""))) {
          return false;
        }
      }
      return true;
    };
    if (installed()) return new absl::Status();
    RunResult npm = RunProgram({"npm", "ci", "--no-audit", "--no-fund", "--prefix", kNodeDir});
    if (npm.code != 0 || !installed()) {
      return new absl::Status(absl::UnavailableError(
          absl::StrCat("npm ci of spdy-transport and ws into ", kNodeDir, " failed (exit ",
                       npm.code, "): ", npm.out, npm.err)));
    }
    return new absl::Status();
  }();
  return *status;
}

class StreamInteropTest : public crib::testing::StreamFixture {
 protected:
  void SetUp() override {
    ASSERT_THAT(NodeModules(), IsOk());
    StreamFixture::SetUp();
  }

  // Runs client.js; its JSON answer.
  nlohmann::json Node(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"node", kClient};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult run = RunProgram(argv, {absl::StrCat("NODE_PATH=", kNodeDir, "/node_modules")});
    EXPECT_EQ(run.code, 0) << run.out << run.err;
    nlohmann::json answer = nlohmann::json::parse(run.out, nullptr, false);
    EXPECT_FALSE(answer.is_discarded()) << run.out << run.err;
    if (answer.is_discarded()) return nlohmann::json::object();
    EXPECT_FALSE(answer.contains("failure")) << answer.dump() << run.err;
    return answer;
  }
};

TEST_F(StreamInteropTest, SpdyTransportExecStdinStderrAndExitCode) {
  std::string id = StartContainer();
  absl::StatusOr<std::string> url = server().PrepareExec(
      {id, {"sh", "-c", "cat; echo to stderr >&2; exit 3"}, false, true, true, true});
  ASSERT_THAT(url.status(), IsOk());
  nlohmann::json r = Node({"spdy-exec", *url, "v4.channel.k8s.io",
                           R"({"stdin": "hello from spdy-transport\n", "stderr": true})"});
  EXPECT_EQ(r["status"], 101);
  EXPECT_EQ(r["protocol"], "v4.channel.k8s.io");
  EXPECT_EQ(r["stdout"], "hello from spdy-transport\n");
  EXPECT_EQ(r["stderr"], "to stderr\n");
  nlohmann::json status = nlohmann::json::parse(r["error"].get<std::string>());
  EXPECT_EQ(status["reason"], "NonZeroExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["message"], "3");
}

TEST_F(StreamInteropTest, SpdyTransportExecWithTtyAndResize) {
  std::string id = StartContainer();
  absl::StatusOr<std::string> url =
      server().PrepareExec({id, {"sh", "-c", "read x; stty size"}, true, true, true, false});
  ASSERT_THAT(url.status(), IsOk());
  nlohmann::json r = Node({"spdy-exec", *url, "v4.channel.k8s.io",
                           R"({"stdin": "\n", "tty": true, "resize": [91, 31]})"});
  EXPECT_THAT(r["stdout"].get<std::string>(), HasSubstr("31 91\r\n"));
  EXPECT_EQ(r["error"], R"({"metadata":{},"status":"Success"})");
}

TEST_F(StreamInteropTest, SpdyTransportLargeOutputUnderItsFlowControl) {
  std::string id = StartContainer();
  // 6 MB: many times spdy-transport's windows, so its WINDOW_UPDATEs must be honoured.
  absl::StatusOr<std::string> url = server().PrepareExec(
      {id, {"sh", "-c", "head -c 6000000 /dev/zero | tr '\\0' x"}, false, false, true, false});
  ASSERT_THAT(url.status(), IsOk());
  nlohmann::json r = Node({"spdy-exec", *url, "v4.channel.k8s.io", "{}"});
  EXPECT_EQ(r["stdout"].get<std::string>(), std::string(6000000, 'x'));
  EXPECT_EQ(r["error"], R"({"metadata":{},"status":"Success"})");
}

TEST_F(StreamInteropTest, SpdyTransportOlderProtocol) {
  std::string id = StartContainer();
  absl::StatusOr<std::string> url =
      server().PrepareExec({id, {"sh", "-c", "echo v2; exit 1"}, false, false, true, false});
  ASSERT_THAT(url.status(), IsOk());
  nlohmann::json r = Node({"spdy-exec", *url, "v2.channel.k8s.io", "{}"});
  EXPECT_EQ(r["protocol"], "v2.channel.k8s.io");
  EXPECT_EQ(r["stdout"], "v2\n");
  EXPECT_EQ(r["error"], "command terminated with non-zero exit code: exit status 1");
}

TEST_F(StreamInteropTest, WsExecV5ClosesStdin) {
  std::string id = StartContainer();
  absl::StatusOr<std::string> url =
      server().PrepareExec({id, {"sh", "-c", "cat; exit 6"}, false, true, true, false});
  ASSERT_THAT(url.status(), IsOk());
  nlohmann::json r = Node({"ws-exec", *url, "v5.channel.k8s.io", R"({"stdin": "ws says hi\n"})"});
  EXPECT_EQ(r["protocol"], "v5.channel.k8s.io");
  EXPECT_EQ(r["stdout"], "ws says hi\n");
  EXPECT_EQ(r["close"], 1000);
  nlohmann::json status = nlohmann::json::parse(r["error"].get<std::string>());
  EXPECT_EQ(status["details"]["causes"][0]["message"], "6");
}

TEST_F(StreamInteropTest, WsExecV4Base64AndTty) {
  std::string id = StartContainer();
  for (const char* protocol : {"v4.channel.k8s.io", "base64.channel.k8s.io"}) {
    absl::StatusOr<std::string> url = server().PrepareExec(
        {id, {"sh", "-c", "echo out; echo err >&2"}, false, false, true, true});
    ASSERT_THAT(url.status(), IsOk());
    nlohmann::json r = Node({"ws-exec", *url, protocol, "{}"});
    EXPECT_EQ(r["protocol"], protocol);
    EXPECT_EQ(r["stdout"], "out\n") << protocol;
    EXPECT_EQ(r["stderr"], "err\n") << protocol;
  }
  absl::StatusOr<std::string> url =
      server().PrepareExec({id, {"sh", "-c", "read x; stty size"}, true, true, true, false});
  ASSERT_THAT(url.status(), IsOk());
  nlohmann::json r =
      Node({"ws-exec", *url, "v4.channel.k8s.io", R"({"stdin": "\n", "resize": [120, 50]})"});
  EXPECT_THAT(r["stdout"].get<std::string>(), HasSubstr("50 120\r\n"));
}

TEST_F(StreamInteropTest, SpdyTransportPortForwardToHttpd) {
  std::string pod = StartHttpdPod(8080, "served to spdy-transport\n");
  absl::StatusOr<std::string> url = server().PreparePortForward({pod, {8080}});
  ASSERT_THAT(url.status(), IsOk());
  nlohmann::json r = Node({"spdy-portforward", *url, "8080", "GET / HTTP/1.0\r\n\r\n"});
  EXPECT_THAT(r["data"].get<std::string>(), ::testing::StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(r["data"].get<std::string>(), ::testing::EndsWith("served to spdy-transport\n"));
  EXPECT_EQ(r["error"], "");
}

TEST_F(StreamInteropTest, WsPortForwardToHttpd) {
  std::string pod = StartHttpdPod(8080, "served to ws\n");
  absl::StatusOr<std::string> url = server().PreparePortForward({pod, {8080}});
  ASSERT_THAT(url.status(), IsOk());
  nlohmann::json r = Node({"ws-portforward", *url, "GET / HTTP/1.0\r\n\r\n"});
  EXPECT_EQ(r["port"], 8080);
  EXPECT_EQ(r["errorPort"], 8080);
  EXPECT_THAT(r["data"].get<std::string>(), ::testing::StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(r["data"].get<std::string>(), ::testing::EndsWith("served to ws\n"));
}

TEST_F(StreamInteropTest, BothClientsOverTls) {
  stream::ServerOptions options = DefaultOptions();
  options.tls = true;
  ASSERT_THAT(lab_->StartServer(options), IsOk());
  std::string id = StartContainer();
  absl::StatusOr<std::string> url =
      server().PrepareExec({id, {"echo", "over tls"}, false, false, true, false});
  ASSERT_THAT(url.status(), IsOk());
  EXPECT_THAT(*url, ::testing::StartsWith("https://"));
  nlohmann::json spdy = Node({"spdy-exec", *url, "v4.channel.k8s.io", "{}"});
  EXPECT_EQ(spdy["stdout"], "over tls\n");
  url = server().PrepareExec({id, {"echo", "over wss"}, false, false, true, false});
  ASSERT_THAT(url.status(), IsOk());
  nlohmann::json ws = Node({"ws-exec", *url, "v5.channel.k8s.io", "{}"});
  EXPECT_EQ(ws["stdout"], "over wss\n");
}

}  // namespace
}  // namespace crib::stream
