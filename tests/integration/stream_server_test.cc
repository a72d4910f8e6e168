// The streaming server over real containers: busybox containers launched through the
// Launcher, the LauncherBackend, the server on 127.0.0.1 and clients over real TCP (crib's
// own SPDY and WebSocket clients here; Node.js clients in stream_interop_test). Port
// forwarding reaches a busybox httpd in a network namespace the test makes. Each test checks
// that nothing is left: processes, cgroups, mounts, network namespaces.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/defaults.h"
#include "runtime/launcher.h"
#include "runtime/spec.h"
#include "stream/launcher_backend.h"
#include "stream/server.h"
#include "support/cribd_process.h"
#include "support/status_matchers.h"
#include "support/stream_client.h"
#include "support/stream_fixture.h"

namespace crib::stream {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::RemoteCommandResult;
using ::crib::testing::RunSpdy;
using ::crib::testing::RunWebSocket;
using ::crib::testing::SelfRssKib;
using ::crib::testing::SpdyClient;
using ::crib::testing::StatusIs;
using ::crib::testing::WaitFor;
using ::crib::testing::WebSocketClient;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

constexpr char kV4[] = "v4.channel.k8s.io";

class StreamServerTest : public crib::testing::StreamFixture {};

// ---- exec over SPDY ----

TEST_F(StreamServerTest, ExecWithoutTtyOutputAndExitCode) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"sh", "-c", "echo out; echo err >&2; exit 3"}, false, false, true, true};
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  EXPECT_THAT(*url, MatchesRegex("http://127\\.0\\.0\\.1:[0-9]+/exec/[A-Za-z0-9_-]{43}"));
  RemoteCommandResult result = RunSpdy(*url, kV4, exec.stdin, exec.stdout, exec.stderr, exec.tty);
  EXPECT_EQ(result.out, "out\n");
  EXPECT_EQ(result.err, "err\n");
  nlohmann::json status = nlohmann::json::parse(result.error);
  EXPECT_EQ(status["status"], "Failure");
  EXPECT_EQ(status["reason"], "NonZeroExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["reason"], "ExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["message"], "3");
  EXPECT_TRUE(result.goaway);
}

TEST_F(StreamServerTest, ExecSuccessIsTheSuccessStatus) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"true"}, false, false, true, false};
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  RemoteCommandResult result = RunSpdy(*url, kV4, false, true, false, false);
  EXPECT_EQ(result.error, R"({"metadata":{},"status":"Success"})");
  EXPECT_EQ(result.out, "");
}

TEST_F(StreamServerTest, ExecStdinEchoThroughCat) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"cat"}, false, true, true, true};
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  std::string input;
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&input, "line ", i, "\n");
  RemoteCommandResult result = RunSpdy(*url, kV4, true, true, true, false, input);
  EXPECT_EQ(result.out, input);
  EXPECT_EQ(result.error, R"({"metadata":{},"status":"Success"})");
}

TEST_F(StreamServerTest, OlderProtocolVersionsGetTextErrors) {
  std::string id = StartContainer();
  for (const char* protocol : {"v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"}) {
    ExecRequest exec{id, {"sh", "-c", "echo hi; exit 7"}, false, false, true, true};
    absl::StatusOr<std::string> url = server().PrepareExec(exec);
    ASSERT_THAT(url.status(), IsOk());
    RemoteCommandResult result = RunSpdy(*url, protocol, false, true, true, false);
    EXPECT_EQ(result.protocol, protocol);
    EXPECT_EQ(result.out, "hi\n") << protocol;
    EXPECT_EQ(result.error, "command terminated with non-zero exit code: exit status 7")
        << protocol;
  }
}

TEST_F(StreamServerTest, ExecWithTtySeesResizeInSttySize) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"sh", "-c", "read x; tty; stty size"}, true, true, true, false};
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  RemoteCommandResult result =
      RunSpdy(*url, kV4, true, true, false, true, "go\n", true, std::make_pair(42, 123));
  EXPECT_THAT(result.out, MatchesRegex("go\r\n/dev/pts/[0-9]+\r\n42 123\r\n"));
  EXPECT_EQ(result.error, R"({"metadata":{},"status":"Success"})");
}

TEST_F(StreamServerTest, ExecOfAMissingBinaryIsAnInternalErrorStatus) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"/bin/nope"}, false, false, true, true};
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  RemoteCommandResult result = RunSpdy(*url, kV4, false, true, true, false);
  nlohmann::json status = nlohmann::json::parse(result.error);
  EXPECT_EQ(status["reason"], "InternalError");
  EXPECT_THAT(status["message"].get<std::string>(),
              HasSubstr("exec \"/bin/nope\": no such file or directory"));
}

TEST_F(StreamServerTest, ExecIsKilledWhenTheClientGoesAway) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"sleep", "1000"}, false, false, true, false};
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  {
    absl::StatusOr<std::unique_ptr<SpdyClient>> client = SpdyClient::Connect(*url, {kV4});
    ASSERT_THAT(client.status(), IsOk());
    (*client)->OpenStream({{"streamtype", "error"}});
    (*client)->OpenStream({{"streamtype", "stdout"}});
    EXPECT_TRUE(WaitFor([&] { return ProcessCount(id) > 1; })) << ProcessCount(id);
  }  // the connection closes
  EXPECT_TRUE(WaitFor([&] { return ProcessCount(id) == 1; })) << ProcessCount(id);
  EXPECT_TRUE(WaitFor([&] { return server().active_sessions() == 0; }));
}

// ---- exec over WebSocket ----

TEST_F(StreamServerTest, ExecOverWebSocketV5ClosesStdin) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"sh", "-c", "cat; echo done >&2; exit 4"}, false, true, true, true};
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
      WebSocketClient::Connect(*url, {"v5.channel.k8s.io", "v4.channel.k8s.io"});
  ASSERT_THAT(client.status(), IsOk());
  WebSocketClient& ws = **client;
  ASSERT_TRUE(ws.upgraded()) << ws.response().body;
  EXPECT_EQ(ws.protocol(), "v5.channel.k8s.io");
  ASSERT_THAT(ws.SendChannel(0, "over websocket\n"), IsOk());
  ASSERT_THAT(ws.SendChannel(255, std::string(1, '\0')), IsOk());  // v5: close stdin
  ASSERT_THAT(ws.Pump([&] { return ws.closed(); }), IsOk());
  EXPECT_EQ(ws.channel(1), "over websocket\n");
  EXPECT_EQ(ws.channel(2), "done\n");
  nlohmann::json status = nlohmann::json::parse(ws.channel(3));
  EXPECT_EQ(status["details"]["causes"][0]["message"], "4");
  EXPECT_EQ(ws.close_code(), 1000);
  // The first message was the empty one on stdout that says the streams are up.
  EXPECT_GE(ws.messages(1), 2);
}

TEST_F(StreamServerTest, ExecOverWebSocketOlderAndBase64Protocols) {
  std::string id = StartContainer();
  for (const char* protocol : {"v4.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io",
                               "v4.base64.channel.k8s.io"}) {
    ExecRequest exec{id, {"sh", "-c", "printf 'a\\001b'; exit 2"}, false, false, true, false};
    absl::StatusOr<std::string> url = server().PrepareExec(exec);
    ASSERT_THAT(url.status(), IsOk());
    absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
        WebSocketClient::Connect(*url, {protocol});
    ASSERT_THAT(client.status(), IsOk());
    WebSocketClient& ws = **client;
    ASSERT_TRUE(ws.upgraded()) << protocol << ": " << ws.response().body;
    EXPECT_EQ(ws.protocol(), protocol);
    ASSERT_THAT(ws.Pump([&] { return ws.closed(); }), IsOk()) << protocol;
    EXPECT_EQ(ws.channel(1), "a\001b") << protocol;
    if (absl::StartsWith(protocol, "v4")) {
      EXPECT_THAT(ws.channel(3), HasSubstr("NonZeroExitCode")) << protocol;
    } else {
      EXPECT_EQ(ws.channel(3), "command terminated with non-zero exit code: exit status 2")
          << protocol;
    }
  }
}

TEST_F(StreamServerTest, WebSocketTtyResize) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"sh", "-c", "read x; stty size"}, true, true, true, false};
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
      WebSocketClient::Connect(*url, {"v4.channel.k8s.io"});
  ASSERT_THAT(client.status(), IsOk());
  WebSocketClient& ws = **client;
  ASSERT_THAT(ws.SendChannel(4, R"({"Width":99,"Height":11})"), IsOk());
  ASSERT_THAT(ws.SendChannel(0, "\n"), IsOk());
  ASSERT_THAT(ws.Pump([&] { return ws.closed(); }), IsOk());
  EXPECT_THAT(ws.channel(1), HasSubstr("11 99\r\n"));
  EXPECT_THAT(ws.channel(3), HasSubstr("Success"));
}

TEST_F(StreamServerTest, WebSocketPingGetsPong) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"sleep", "2"}, false, false, true, false};
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
      WebSocketClient::Connect(*url, {"v4.channel.k8s.io"});
  ASSERT_THAT(client.status(), IsOk());
  ASSERT_THAT((*client)->SendFrame(ws::kPing, "are you there"), IsOk());
  ASSERT_THAT((*client)->Pump([&] { return !(*client)->pongs().empty(); }), IsOk());
  EXPECT_EQ((*client)->pongs()[0], "are you there");
}

// ---- attach ----

TEST_F(StreamServerTest, AttachSeesOutputAndSendsInput) {
  runtime::CreateOptions create;
  create.stdin = true;
  std::string id = StartContainer({"sh", "-c", "while read l; do echo got $l; done"}, create);
  AttachRequest attach{id, false, true, true, true};
  absl::StatusOr<std::string> url = server().PrepareAttach(attach);
  ASSERT_THAT(url.status(), IsOk());
  EXPECT_THAT(*url, HasSubstr("/attach/"));
  // A second attacher, reading only.
  absl::StatusOr<std::string> reader_url = server().PrepareAttach({id, false, false, true, false});
  ASSERT_THAT(reader_url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<SpdyClient>> reader = SpdyClient::Connect(*reader_url, {kV4});
  ASSERT_THAT(reader.status(), IsOk());
  (*reader)->OpenStream({{"streamtype", "error"}});
  uint32_t reader_out = (*reader)->OpenStream({{"streamtype", "stdout"}});
  ASSERT_THAT((*reader)->Pump([&] { return (*reader)->replied(reader_out); }), IsOk());

  absl::StatusOr<std::unique_ptr<SpdyClient>> client = SpdyClient::Connect(*url, {kV4});
  ASSERT_THAT(client.status(), IsOk());
  SpdyClient& c = **client;
  uint32_t error = c.OpenStream({{"streamtype", "error"}});
  uint32_t in = c.OpenStream({{"streamtype", "stdin"}});
  uint32_t out = c.OpenStream({{"streamtype", "stdout"}});
  c.OpenStream({{"streamtype", "stderr"}});
  ASSERT_THAT(c.Pump([&] { return c.replied(out); }), IsOk());
  EXPECT_TRUE(WaitFor([&] { return server().active_sessions_for(id) == 2; }));
  absl::SleepFor(absl::Milliseconds(100));  // the attach is made once all streams are there
  ASSERT_THAT(c.Send(in, "hello\n"), IsOk());
  ASSERT_THAT(c.Pump([&] { return absl::StrContains(c.data(out), "got hello\n"); }), IsOk());
  ASSERT_THAT((*reader)->Pump(
                  [&] { return absl::StrContains((*reader)->data(reader_out), "got hello\n"); }),
              IsOk());
  // The container exits: both attach sessions end with success.
  ASSERT_THAT(launcher().Kill(bundle(id), SIGKILL), IsOk());
  ASSERT_THAT(c.WaitFinished(error), IsOk());
  EXPECT_EQ(c.data(error), R"({"metadata":{},"status":"Success"})");
}

TEST_F(StreamServerTest, AttachStdinOnceEndsTheContainersStdin) {
  runtime::CreateOptions create;
  create.stdin = true;
  create.stdin_once = true;
  std::string id = StartContainer({"sh", "-c", "cat; echo bye"}, create);
  AttachRequest attach{id, false, true, true, false};
  absl::StatusOr<std::string> url = server().PrepareAttach(attach);
  ASSERT_THAT(url.status(), IsOk());
  RemoteCommandResult result = RunSpdy(*url, kV4, true, true, false, false, "first\n");
  EXPECT_EQ(result.out, "first\nbye\n");
  EXPECT_EQ(result.error, R"({"metadata":{},"status":"Success"})");
  absl::StatusOr<runtime::ExitInfo> exit = launcher().WaitExit(bundle(id), absl::Seconds(10));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0);
}

TEST_F(StreamServerTest, AttachOverWebSocketToATerminal) {
  runtime::CreateOptions create;
  create.stdin = true;
  std::string id = StartContainer({"sh", "-c", "read l; echo got $l; stty size"}, create,
                                  /*terminal=*/true);
  absl::StatusOr<std::string> url = server().PrepareAttach({id, true, true, true, false});
  ASSERT_THAT(url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
      WebSocketClient::Connect(*url, {"v5.channel.k8s.io"});
  ASSERT_THAT(client.status(), IsOk());
  WebSocketClient& ws = **client;
  ASSERT_THAT(ws.Pump([&] { return ws.messages(1) >= 1; }), IsOk());  // attached
  ASSERT_THAT(ws.SendChannel(4, R"({"Width":77,"Height":22})"), IsOk());
  ASSERT_THAT(ws.SendChannel(0, "x\n"), IsOk());
  ASSERT_THAT(ws.Pump([&] { return ws.closed(); }), IsOk());
  EXPECT_THAT(ws.channel(1), HasSubstr("got x\r\n22 77\r\n"));
  EXPECT_THAT(ws.channel(3), HasSubstr("Success"));
}

// ---- port forwarding ----

TEST_F(StreamServerTest, PortForwardOverSpdyReachesHttpdInThePod) {
  std::string pod = StartHttpdPod(8080, "hello from the pod\n");
  absl::StatusOr<std::string> url = server().PreparePortForward({pod, {8080}});
  ASSERT_THAT(url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<SpdyClient>> client =
      SpdyClient::Connect(*url, {"portforward.k8s.io"});
  ASSERT_THAT(client.status(), IsOk());
  SpdyClient& c = **client;
  ASSERT_TRUE(c.upgraded()) << c.response().body;
  for (int request = 0; request < 3; ++request) {
    std::string rid = absl::StrCat(request);
    uint32_t error = c.OpenStream({{"streamtype", "error"}, {"port", "8080"}, {"requestid", rid}});
    uint32_t data = c.OpenStream({{"streamtype", "data"}, {"port", "8080"}, {"requestid", rid}});
    ASSERT_THAT(c.Send(data, "GET /index.html HTTP/1.0\r\n\r\n", /*fin=*/true), IsOk());
    ASSERT_THAT(c.WaitFinished(data), IsOk());
    EXPECT_THAT(c.data(data), ::testing::StartsWith("HTTP/1.1 200 OK"));
    EXPECT_THAT(c.data(data), ::testing::EndsWith("hello from the pod\n"));
    ASSERT_THAT(c.WaitFinished(error), IsOk());
    EXPECT_EQ(c.data(error), "");
  }
  // As client-go does: the request without half-closing the data stream; once the pod has
  // answered and closed, both streams end (client-go waits for the error stream's end).
  {
    uint32_t error = c.OpenStream({{"streamtype", "error"}, {"port", "8080"}, {"requestid", "g"}});
    uint32_t data = c.OpenStream({{"streamtype", "data"}, {"port", "8080"}, {"requestid", "g"}});
    ASSERT_THAT(c.Send(data, "GET /index.html HTTP/1.0\r\n\r\n", /*fin=*/false), IsOk());
    ASSERT_THAT(c.WaitFinished(data), IsOk());
    EXPECT_THAT(c.data(data), ::testing::EndsWith("hello from the pod\n"));
    ASSERT_THAT(c.WaitFinished(error), IsOk());
    EXPECT_EQ(c.data(error), "");
  }
  // A port nobody listens on: the error stream says so, the connection lives on.
  absl::StatusOr<std::string> any_url = server().PreparePortForward({pod, {}});
  ASSERT_THAT(any_url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<SpdyClient>> other =
      SpdyClient::Connect(*any_url, {"portforward.k8s.io"});
  ASSERT_THAT(other.status(), IsOk());
  uint32_t error =
      (*other)->OpenStream({{"streamtype", "error"}, {"port", "9"}, {"requestid", "x"}});
  (*other)->OpenStream({{"streamtype", "data"}, {"port", "9"}, {"requestid", "x"}});
  ASSERT_THAT((*other)->WaitFinished(error), IsOk());
  EXPECT_THAT((*other)->data(error), HasSubstr("connection refused"));
  // And a port outside the request's list is refused on the first connection.
  uint32_t error2 = c.OpenStream({{"streamtype", "error"}, {"port", "8081"}, {"requestid", "y"}});
  c.OpenStream({{"streamtype", "data"}, {"port", "8081"}, {"requestid", "y"}});
  ASSERT_THAT(c.WaitFinished(error2), IsOk());
  EXPECT_THAT(c.data(error2), HasSubstr("not one of the ports"));
}

TEST_F(StreamServerTest, PortForwardOverWebSocket) {
  std::string pod = StartHttpdPod(8080, "websocket forwarded\n");
  absl::StatusOr<std::string> url = server().PreparePortForward({pod, {8080}});
  ASSERT_THAT(url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
      WebSocketClient::Connect(*url, {"v4.channel.k8s.io"});
  ASSERT_THAT(client.status(), IsOk());
  WebSocketClient& ws = **client;
  ASSERT_TRUE(ws.upgraded()) << ws.response().body;
  // Each channel starts with the port, little-endian.
  ASSERT_THAT(ws.Pump([&] { return ws.channel(0).size() >= 2 && ws.channel(1).size() >= 2; }),
              IsOk());
  EXPECT_EQ(ws.channel(0), std::string("\x90\x1f", 2));
  EXPECT_EQ(ws.channel(1), std::string("\x90\x1f", 2));
  ASSERT_THAT(ws.SendChannel(0, "GET / HTTP/1.0\r\n\r\n"), IsOk());
  ASSERT_THAT(ws.Pump([&] { return ws.closed(); }), IsOk());  // httpd closes, so does the server
  EXPECT_THAT(ws.channel(0).substr(2), ::testing::StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(ws.channel(0), ::testing::EndsWith("websocket forwarded\n"));
  EXPECT_EQ(ws.channel(1).size(), 2u);
}

// ---- tokens ----

TEST_F(StreamServerTest, BadReusedExpiredAndMismatchedTokensAre404) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"true"}, false, false, true, false};
  auto code_of = [&](const std::string& url) {
    absl::StatusOr<std::unique_ptr<SpdyClient>> client = SpdyClient::Connect(url, {kV4});
    return client.ok() ? (*client)->response().code : -1;
  };
  EXPECT_EQ(code_of(absl::StrCat(server().base_url(), "/exec/not-a-token")), 404);
  EXPECT_EQ(code_of(absl::StrCat(server().base_url(), "/nothing/here")), 404);
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  RemoteCommandResult used = RunSpdy(*url, kV4, false, true, false, false);
  EXPECT_THAT(used.error, HasSubstr("Success"));
  EXPECT_EQ(code_of(*url), 404);  // used
  // An exec token on the attach path.
  absl::StatusOr<std::string> other = server().PrepareExec(exec);
  ASSERT_THAT(other.status(), IsOk());
  std::string swapped = *other;
  swapped.replace(swapped.find("/exec/"), 6, "/attach/");
  EXPECT_EQ(code_of(swapped), 404);
  EXPECT_EQ(code_of(*other), 404);  // and it is gone: a token works once, wherever it is tried

  // Expired: a server whose tokens live 300 ms.
  ServerOptions options = DefaultOptions();
  options.token_ttl = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<Server>> short_lived = Server::Start(options, &backend());
  ASSERT_THAT(short_lived.status(), IsOk());
  absl::StatusOr<std::string> late = (*short_lived)->PrepareExec(exec);
  ASSERT_THAT(late.status(), IsOk());
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_EQ(code_of(*late), 404);
}

TEST_F(StreamServerTest, UpgradeNegotiationErrors) {
  std::string id = StartContainer();
  ExecRequest exec{id, {"true"}, false, false, true, false};
  absl::StatusOr<std::string> url = server().PrepareExec(exec);
  ASSERT_THAT(url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<SpdyClient>> client =
      SpdyClient::Connect(*url, {"v9.channel.k8s.io"});
  ASSERT_THAT(client.status(), IsOk());
  EXPECT_EQ((*client)->response().code, 403);
  EXPECT_THAT((*client)->response().body, HasSubstr("unable to negotiate protocol"));
  EXPECT_EQ((*client)->response().headers.at("x-accepted-stream-protocol-versions"),
            "channel.k8s.io");  // the last of the four values
  // No upgrade at all.
  absl::StatusOr<std::string> plain_url = server().PrepareExec(exec);
  ASSERT_THAT(plain_url.status(), IsOk());
  absl::StatusOr<crib::testing::Url> parsed = crib::testing::ParseUrl(*plain_url);
  ASSERT_THAT(parsed.status(), IsOk());
  absl::StatusOr<std::unique_ptr<crib::testing::ClientConnection>> conn =
      crib::testing::ClientConnection::Dial(*parsed);
  ASSERT_THAT(conn.status(), IsOk());
  std::string rest;
  absl::StatusOr<crib::testing::ResponseHead> head =
      (*conn)->Request("GET", parsed->path, {}, &rest);
  ASSERT_THAT(head.status(), IsOk());
  EXPECT_EQ(head->code, 400);
  EXPECT_THAT(head->body, HasSubstr("unable to upgrade"));
}

// ---- validation and limits ----

TEST_F(StreamServerTest, PrepareValidatesTheRequest) {
  std::string id = StartContainer();
  EXPECT_THAT(server().PrepareExec({id, {"true"}, false, false, false, false}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("one of stdin")));
  EXPECT_THAT(server().PrepareExec({id, {"true"}, true, false, true, true}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tty and stderr")));
  EXPECT_THAT(server().PrepareExec({id, {}, false, false, true, false}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cmd")));
  EXPECT_THAT(server().PrepareAttach({id, true, false, true, true}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tty and stderr")));
  EXPECT_THAT(server().PrepareExec({"nosuch", {"true"}, false, false, true, false}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nosuch")));
  EXPECT_THAT(server().PreparePortForward({"nopod", {80}}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nopod")));
  EXPECT_THAT(server().PreparePortForward({"", {80}}),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  ASSERT_THAT(launcher().Kill(bundle(id), SIGKILL), IsOk());
  ASSERT_THAT(launcher().WaitExit(bundle(id), absl::Seconds(10)).status(), IsOk());
  EXPECT_THAT(server().PrepareExec({id, {"true"}, false, false, true, false}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not running")));
}

TEST_F(StreamServerTest, TenStreamsAtOnce) {
  std::string id = StartContainer();
  std::vector<std::thread> threads;
  std::vector<RemoteCommandResult> results(10);
  std::vector<std::string> urls;
  for (int i = 0; i < 10; ++i) {
    ExecRequest exec{
        id, {"sh", "-c", absl::StrCat("sleep 0.5; echo stream ", i)}, false, false, true, false};
    absl::StatusOr<std::string> url = server().PrepareExec(exec);
    ASSERT_THAT(url.status(), IsOk());
    urls.push_back(*url);
  }
  std::atomic<int> most{0};
  for (int i = 0; i < 10; ++i) {
    threads.emplace_back([&, i] {
      results[i] = i % 2 == 0 ? RunSpdy(urls[i], kV4, false, true, false, false)
                              : RunWebSocket(urls[i], "v4.channel.k8s.io");
    });
  }
  std::thread watcher([&] {
    for (int i = 0; i < 100; ++i) {
      most = std::max(most.load(), server().active_sessions());
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  for (auto& t : threads) t.join();
  watcher.join();
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(results[i].out, absl::StrCat("stream ", i, "\n")) << i;
    EXPECT_THAT(results[i].error, HasSubstr("Success")) << i;
  }
  EXPECT_EQ(most.load(), 10);
}

TEST_F(StreamServerTest, LimitsPerContainerAndInTotal) {
  ServerOptions options = DefaultOptions();
  options.max_streams_per_container = 2;
  options.max_streams = 3;
  absl::StatusOr<std::unique_ptr<Server>> limited = Server::Start(options, &backend());
  ASSERT_THAT(limited.status(), IsOk());
  Server& s = **limited;
  std::string a = StartContainer();
  std::vector<std::unique_ptr<SpdyClient>> open;
  auto open_sleeper = [&](const std::string& id) -> int {
    absl::StatusOr<std::string> url =
        s.PrepareExec({id, {"sleep", "100"}, false, false, true, false});
    if (!url.ok()) return -static_cast<int>(url.status().code());
    absl::StatusOr<std::unique_ptr<SpdyClient>> client = SpdyClient::Connect(*url, {kV4});
    if (!client.ok()) return -1;
    int code = (*client)->response().code;
    if (code == 101) {
      (*client)->OpenStream({{"streamtype", "error"}});
      (*client)->OpenStream({{"streamtype", "stdout"}});
      open.push_back(*std::move(client));
    }
    return code;
  };
  auto connect = [&](const std::string& url) -> int {
    absl::StatusOr<std::unique_ptr<SpdyClient>> client = SpdyClient::Connect(url, {kV4});
    if (!client.ok()) return -1;
    int code = (*client)->response().code;
    if (code == 101) {
      (*client)->OpenStream({{"streamtype", "error"}});
      (*client)->OpenStream({{"streamtype", "stdout"}});
      open.push_back(*std::move(client));
    }
    return code;
  };
  // Three tokens for one container, prepared while nothing runs.
  std::vector<std::string> urls;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::string> url =
        s.PrepareExec({a, {"sleep", "100"}, false, false, true, false});
    ASSERT_THAT(url.status(), IsOk());
    urls.push_back(*url);
  }
  EXPECT_EQ(connect(urls[0]), 101);
  EXPECT_EQ(connect(urls[1]), 101);
  EXPECT_TRUE(WaitFor([&] { return s.active_sessions_for(a) == 2; }));
  // At the limit: preparing another is refused, and the third token meets it when it connects.
  EXPECT_THAT(s.PrepareExec({a, {"true"}, false, false, true, false}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("2 streams")));
  EXPECT_EQ(connect(urls[2]), 429);
  // Another container has its own allowance, until the total is reached.
  std::string b = StartContainer();
  EXPECT_EQ(open_sleeper(b), 101);  // the third connection in total
  absl::StatusOr<std::string> fourth_url = s.PrepareExec({b, {"true"}, false, false, true, false});
  ASSERT_THAT(fourth_url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<SpdyClient>> fourth = SpdyClient::Connect(*fourth_url, {kV4});
  ASSERT_THAT(fourth.status(), IsOk());
  EXPECT_EQ((*fourth)->response().code, 503);  // from the accept loop, before any token
  open.clear();                                // the sessions end, their processes are killed
  EXPECT_TRUE(WaitFor([&] { return s.active_sessions() == 0; }));
  EXPECT_TRUE(WaitFor([&] { return ProcessCount(a) == 1 && ProcessCount(b) == 1; }));
}

TEST_F(StreamServerTest, IdleConnectionsTimeOut) {
  ServerOptions options = DefaultOptions();
  options.idle_timeout = absl::Milliseconds(500);
  absl::StatusOr<std::unique_ptr<Server>> idle = Server::Start(options, &backend());
  ASSERT_THAT(idle.status(), IsOk());
  std::string id = StartContainer();
  absl::StatusOr<std::string> url =
      (*idle)->PrepareExec({id, {"sleep", "100"}, false, false, true, false});
  ASSERT_THAT(url.status(), IsOk());
  absl::StatusOr<std::unique_ptr<SpdyClient>> client = SpdyClient::Connect(*url, {kV4});
  ASSERT_THAT(client.status(), IsOk());
  (*client)->OpenStream({{"streamtype", "error"}});
  (*client)->OpenStream({{"streamtype", "stdout"}});
  absl::Time start = absl::Now();
  EXPECT_THAT((*client)->Pump([] { return false; }, absl::Seconds(10)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("closed")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(WaitFor([&] { return ProcessCount(id) == 1; }));
}

TEST_F(StreamServerTest, SlowReaderGetsEverythingWithBoundedMemory) {
  std::string id = StartContainer();
  constexpr size_t kSize = 64 << 20;
  absl::StatusOr<std::string> url = server().PrepareExec(
      {id, {"head", "-c", absl::StrCat(kSize), "/dev/zero"}, false, false, true, false});
  ASSERT_THAT(url.status(), IsOk());
  long rss_before = SelfRssKib();
  for (bool flow_control : {false}) {
    absl::StatusOr<std::unique_ptr<SpdyClient>> client =
        SpdyClient::Connect(*url, {kV4}, flow_control);
    ASSERT_THAT(client.status(), IsOk());
    SpdyClient& c = **client;
    uint32_t error = c.OpenStream({{"streamtype", "error"}});
    uint32_t out = c.OpenStream({{"streamtype", "stdout"}});
    // Not reading for a while: the server must stop reading the process, not buffer it all.
    c.set_paused(true);
    (void)c.Pump([] { return false; }, absl::Seconds(1));
    long rss_paused = SelfRssKib();
    c.set_paused(false);
    // Read it all, dropping the bytes as they come.
    ASSERT_THAT(c.Pump(
                    [&] {
                      c.data(out).clear();
                      return c.finished(error);
                    },
                    absl::Seconds(60)),
                IsOk());
    EXPECT_EQ(c.received(), kSize + c.data(error).size());
    EXPECT_THAT(c.data(error), HasSubstr("Success"));
    EXPECT_LT(rss_paused - rss_before, 16 * 1024) << "KiB grown while the client did not read";
  }
}

TEST_F(StreamServerTest, SpdyPeerWithFlowControlGetsWindowedData) {
  std::string id = StartContainer();
  constexpr size_t kSize = 8 << 20;
  absl::StatusOr<std::string> url = server().PrepareExec(
      {id, {"head", "-c", absl::StrCat(kSize), "/dev/zero"}, false, false, true, false});
  ASSERT_THAT(url.status(), IsOk());
  // A peer granting small windows: the server must wait for WINDOW_UPDATEs.
  absl::StatusOr<std::unique_ptr<SpdyClient>> client =
      SpdyClient::Connect(*url, {kV4}, /*flow_control=*/true, /*window=*/16384);
  ASSERT_THAT(client.status(), IsOk());
  SpdyClient& c = **client;
  uint32_t error = c.OpenStream({{"streamtype", "error"}});
  uint32_t out = c.OpenStream({{"streamtype", "stdout"}});
  ASSERT_THAT(c.Pump(
                  [&] {
                    c.data(out).clear();
                    return c.finished(error);
                  },
                  absl::Seconds(60)),
              IsOk());
  EXPECT_EQ(c.received(), kSize + c.data(error).size());
}

TEST_F(StreamServerTest, ExecOverTls) {
  ServerOptions options = DefaultOptions();
  options.tls = true;
  absl::StatusOr<std::unique_ptr<Server>> tls = Server::Start(options, &backend());
  ASSERT_THAT(tls.status(), IsOk());
  EXPECT_THAT((*tls)->base_url(), ::testing::StartsWith("https://127.0.0.1:"));
  EXPECT_THAT((*tls)->certificate_pem(), HasSubstr("BEGIN CERTIFICATE"));
  std::string id = StartContainer();
  absl::StatusOr<std::string> url =
      (*tls)->PrepareExec({id, {"sh", "-c", "echo secret; exit 5"}, false, false, true, false});
  ASSERT_THAT(url.status(), IsOk());
  RemoteCommandResult result = RunSpdy(*url, kV4, false, true, false, false);
  EXPECT_EQ(result.out, "secret\n");
  EXPECT_THAT(result.error, HasSubstr("\"5\""));
  absl::StatusOr<std::string> ws_url =
      (*tls)->PrepareExec({id, {"echo", "over wss"}, false, false, true, false});
  ASSERT_THAT(ws_url.status(), IsOk());
  RemoteCommandResult ws = RunWebSocket(*ws_url, "v5.channel.k8s.io");
  EXPECT_EQ(ws.out, "over wss\n");
}

}  // namespace
}  // namespace crib::stream
