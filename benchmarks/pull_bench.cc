// pull_bench: how long cribd takes to pull and unpack a ~100 MB multi-layer image from a local
// docker-registry into an empty store, beside the floor for that work on this machine: `tar
// -xzf` of the same layer blobs into a scratch directory, one after the other. crib syncs each
// snapshot to disk before committing it, tar does not, so the floor is also given with a final
// `sync` (the durable floor). Every run starts with the page cache written back, so that no run
// pays for the previous one's dirty pages. Not a test: it prints figures. Run as root:
// build/benchmarks/pull_bench [runs]
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "support/cribd_process.h"
#include "support/registry.h"

namespace crib::testing {
namespace {

int Run(int runs) {
  auto registry = LocalRegistry::Start();
  if (!registry.ok()) {
    std::fprintf(stderr, "start registry: %s\n", std::string(registry.status().message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "building and pushing big:latest...\n");
  auto images = (*registry)->Push({"big:latest"});
  if (!images.ok()) {
    std::fprintf(stderr, "push: %s\n", std::string(images.status().message()).c_str());
    return 1;
  }
  const TestImage& big = images->at("big:latest");
  int64_t compressed = 0;
  for (int64_t size : big.layer_sizes) compressed += size;
  std::printf("image big:latest: %zu layers, %.1f MB compressed\n", big.layers.size(),
              static_cast<double>(compressed) / 1e6);

  for (int run = 0; run < runs; ++run) {
    // The floor: tar -xzf of each layer blob straight from the registry's storage.
    TempDir scratch;
    ::sync();
    const absl::Time tar_start = absl::Now();
    for (const std::string& layer : big.layers) {
      const std::string hex = layer.substr(7);
      const std::string blob =
          absl::StrCat((*registry)->dir(), "/data/docker/registry/v2/blobs/sha256/",
                       hex.substr(0, 2), "/", hex, "/data");
      const std::string cmd = absl::StrCat("tar -xzf ", blob, " -C ", scratch.path());
      if (std::system(cmd.c_str()) != 0) {
        std::fprintf(stderr, "%s failed\n", cmd.c_str());
        return 1;
      }
    }
    const absl::Duration tar_time = absl::Now() - tar_start;
    ::sync();
    const absl::Duration durable_tar_time = absl::Now() - tar_start;

    TempDir dir;
    auto cribd = CribdProcess::Start(CribdProcess::OptionsIn(dir.path()));
    if (!cribd.ok()) {
      std::fprintf(stderr, "start cribd: %s\n", std::string(cribd.status().message()).c_str());
      return 1;
    }
    cri::PullImageRequest request;
    request.mutable_image()->set_image(absl::StrCat((*registry)->host(), "/big:latest"));
    cri::PullImageResponse response;
    ::sync();
    const absl::Time pull_start = absl::Now();
    grpc::Status status = (*cribd)->Image()->PullImage(ContextWithDeadline(absl::Minutes(10)).get(),
                                                       request, &response);
    const absl::Duration pull_time = absl::Now() - pull_start;
    if (!status.ok()) {
      std::fprintf(stderr, "pull: %s\n", status.error_message().c_str());
      return 1;
    }
    std::printf(
        "run %d: crib pull+unpack %.2f s, tar -xzf floor %.2f s (ratio %.2f), "
        "tar -xzf + sync %.2f s (ratio %.2f)\n",
        run + 1, absl::ToDoubleSeconds(pull_time), absl::ToDoubleSeconds(tar_time),
        absl::ToDoubleSeconds(pull_time) / absl::ToDoubleSeconds(tar_time),
        absl::ToDoubleSeconds(durable_tar_time),
        absl::ToDoubleSeconds(pull_time) / absl::ToDoubleSeconds(durable_tar_time));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace crib::testing

int main(int argc, char** argv) { return crib::testing::Run(argc > 1 ? std::atoi(argv[1]) : 3); }
