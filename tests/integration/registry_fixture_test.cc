// The registry fixture and the test images: a real docker-registry answers, the pushed
// manifests are what build_images.py says, and the auth instance refuses anonymous calls.
#include <signal.h>
#include <sys/stat.h>

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

TEST(ScriptedHttpServer, AnswersAndRecords) {
  ScriptedHttpServer server([](const HttpRequest& request, HttpConnection& connection) {
    connection.Respond(200, "hello " + request.target);
  });
  const int port = server.port();
  EXPECT_GT(port, 0);
  // Probed with a raw socket through the registry fixture's own helper is not possible here;
  // the client tests exercise this server end to end.
  EXPECT_THAT(server.Requests(), SizeIs(0));
}

}  // namespace
}  // namespace crib::testing
