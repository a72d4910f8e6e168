// The registry fixture and the test images: a real docker-registry answers, the pushed
// manifests are what build_images.py says, and the auth instance refuses anonymous calls.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/registry.h"
#include "support/status_matchers.h"

namespace crib::testing {
namespace {

using ::testing::SizeIs;

TEST(LocalRegistry, PushesDeterministicImagesAndCleansUp) {
  std::string dir;
  pid_t pid = -1;
  {
    absl::StatusOr<std::unique_ptr<LocalRegistry>> registry = LocalRegistry::Start();
    ASSERT_THAT(registry, IsOk());
    dir = (*registry)->dir();
    pid = (*registry)->pid();
    absl::StatusOr<TestImages> images = (*registry)->Push();
    ASSERT_THAT(images, IsOk());
    EXPECT_EQ(images->size(), std::size(kTestImageNames));
    const TestImage& busybox = images->at("busybox:latest");
    EXPECT_EQ(busybox.media_type, "application/vnd.oci.image.manifest.v1+json");
    EXPECT_THAT(busybox.layers, SizeIs(1));
    EXPECT_THAT(images->at("layers:latest").layers, SizeIs(5));
    EXPECT_EQ(images->at("layers:latest").layers[0], busybox.layers[0]);
    const TestImage& multiarch = images->at("multiarch:latest");
    EXPECT_EQ(multiarch.media_type, "application/vnd.oci.image.index.v1+json");
    ASSERT_EQ(multiarch.manifests.count("linux/amd64"), 1u);
    EXPECT_EQ(multiarch.manifests.at("linux/amd64").digest, busybox.digest);
    EXPECT_NE(multiarch.manifests.at("linux/arm64/v8").layers, busybox.layers);
    EXPECT_EQ(images->at("dockerlist:latest").media_type,
              "application/vnd.docker.distribution.manifest.list.v2+json");
    EXPECT_EQ(images->at("docker:latest").media_type,
              "application/vnd.docker.distribution.manifest.v2+json");
    // The registry stored the blobs on disk under its own directory.
    const std::string blob_dir = dir + "/data/docker/registry/v2/blobs/sha256/" +
                                 busybox.layers[0].substr(7, 2) + "/" + busybox.layers[0].substr(7);
    EXPECT_TRUE(std::filesystem::exists(blob_dir + "/data")) << blob_dir;

    // Deterministic: pushing again yields the same digests.
    absl::StatusOr<TestImages> again = (*registry)->Push({"busybox:latest", "layers:latest"});
    ASSERT_THAT(again, IsOk());
    EXPECT_EQ(again->at("busybox:latest").digest, busybox.digest);
    EXPECT_EQ(again->at("layers:latest").digest, images->at("layers:latest").digest);
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_NE(::kill(pid, 0), 0);
}

TEST(LocalRegistry, BasicAuthInstanceRefusesAnonymousPushes) {
  LocalRegistryOptions options;
  options.basic_auth = true;
  absl::StatusOr<std::unique_ptr<LocalRegistry>> registry = LocalRegistry::Start(options);
  ASSERT_THAT(registry, IsOk());
  EXPECT_THAT(BuildAndPushTestImages((*registry)->host(), {"busybox:latest"}),
              StatusIs(absl::StatusCode::kInternal, ::testing::HasSubstr("401")));
  absl::StatusOr<TestImages> images = (*registry)->Push({"busybox:latest"});
  ASSERT_THAT(images, IsOk());
  EXPECT_EQ(images->count("busybox:latest"), 1u);
}

// A raw HTTP/1.1 exchange with 127.0.0.1:port; returns everything the server sent.
std::string RawExchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  }
  ::close(fd);
  return out;
}

TEST(ScriptedHttpServer, AnswersAndRecords) {
  ScriptedHttpServer server([](const HttpRequest& request, HttpConnection& connection) {
    connection.Respond(200, "hello " + request.target + " " + request.body,
                       {{"X-Test", request.Header("X-Name")}});
  });
  const std::string reply = RawExchange(
      server.port(),
      "POST /v2/x?y=1 HTTP/1.1\r\nHost: a\r\nX-Name: crib\r\nContent-Length: 4\r\n\r\nbody");
  EXPECT_THAT(reply, ::testing::StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(reply, ::testing::HasSubstr("X-Test: crib\r\n"));
  EXPECT_THAT(reply, ::testing::EndsWith("\r\n\r\nhello /v2/x?y=1 body"));
  const std::vector<HttpRequest> requests = server.Requests();
  ASSERT_THAT(requests, SizeIs(1));
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/v2/x?y=1");
  EXPECT_EQ(requests[0].Header("x-name"), "crib");
  EXPECT_EQ(requests[0].body, "body");
}

TEST(ScriptedHttpServer, StallEndsWhenThePeerLeaves) {
  const absl::Time start = absl::Now();
  {
    ScriptedHttpServer server([](const HttpRequest&, HttpConnection& connection) {
      connection.Write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
      connection.Stall(absl::Seconds(60));
    });
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    const std::string request = "GET / HTTP/1.1\r\n\r\n";
    ASSERT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
    absl::SleepFor(absl::Milliseconds(200));
    ASSERT_THAT(server.Requests(), SizeIs(1));
    ::close(fd);
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace crib::testing
