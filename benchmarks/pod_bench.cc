// Pod sandbox benchmark: RunPodSandbox and StopPodSandbox+RemovePodSandbox latency (p50, p99)
// over 100 pods one after another and 8 at a time, and the pause process's RSS, through a
// real cribd. Prints figures; asserts nothing.
//
//   pod_bench [--pods N] [--parallel P] [--host-network] [--steps]
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "nlohmann/json.hpp"
#include "support/cri_calls.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/percentile.h"

namespace crib::testing {
namespace {

struct Options {
  int pods = 100;
  int parallel = 8;
  bool host_network = false;
  bool steps = false;  // print cribd's per-step timings of a few pods
};

class Bench {
 public:
  Bench(const Options& options, CribdProcess& cribd, std::string cgroup_parent)
      : options_(options), cribd_(cribd), cgroup_parent_(std::move(cgroup_parent)) {}

  cri::RunPodSandboxRequest Request(int i) const {
    cri::RunPodSandboxRequest request;
    cri::PodSandboxConfig* config = request.mutable_config();
    config->mutable_metadata()->set_name(absl::StrCat("bench-", i));
    config->mutable_metadata()->set_namespace_("bench");
    config->mutable_metadata()->set_uid(
        absl::StrCat("uid-", i, "-", absl::ToUnixNanos(absl::Now())));
    config->mutable_linux()->set_cgroup_parent(cgroup_parent_);
    if (options_.host_network) {
      config->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
          cri::NODE);
    }
    return request;
  }

  // Runs `options_.pods` pods with `parallel` callers, then stops and removes them likewise.
  bool Round(int parallel, std::vector<double>& run_ms, std::vector<double>& remove_ms,
             double* rss_kib) {
    std::vector<std::string> ids(options_.pods);
    std::vector<double> run(options_.pods), remove(options_.pods);
    std::atomic<int> next = 0, failures = 0;
    auto runner = [&] {
      auto stub = cribd_.Runtime();
      for (int i; (i = next++) < options_.pods;) {
        cri::RunPodSandboxResponse response;
        const absl::Time t0 = absl::Now();
        grpc::Status s = stub->RunPodSandbox(ContextWithDeadline(absl::Seconds(60)).get(),
                                             Request(i), &response);
        run[i] = absl::ToDoubleMilliseconds(absl::Now() - t0);
        if (!s.ok()) {
          if (failures++ == 0)
            std::fprintf(stderr, "RunPodSandbox: %s\n", s.error_message().c_str());
        }
        ids[i] = response.pod_sandbox_id();
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < parallel; ++t) threads.emplace_back(runner);
    for (std::thread& t : threads) t.join();
    threads.clear();
    if (rss_kib != nullptr && !ids.empty() && !ids[0].empty()) *rss_kib = PauseRssKib(ids[0]);
    next = 0;
    auto remover = [&] {
      auto stub = cribd_.Runtime();
      for (int i; (i = next++) < options_.pods;) {
        const absl::Time t0 = absl::Now();
        grpc::Status s = StopPod(*stub, ids[i]);
        if (s.ok()) s = RemovePod(*stub, ids[i]);
        remove[i] = absl::ToDoubleMilliseconds(absl::Now() - t0);
        if (!s.ok() && failures++ == 0) {
          std::fprintf(stderr, "Stop/RemovePodSandbox: %s\n", s.error_message().c_str());
        }
      }
    };
    for (int t = 0; t < parallel; ++t) threads.emplace_back(remover);
    for (std::thread& t : threads) t.join();
    run_ms = std::move(run);
    remove_ms = std::move(remove);
    return failures == 0;
  }

  double PauseRssKib(const std::string& id) {
    cri::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    request.set_verbose(true);
    cri::PodSandboxStatusResponse response;
    if (!cribd_.Runtime()->PodSandboxStatus(ContextWithDeadline().get(), request, &response).ok()) {
      return 0;
    }
    const int pid = nlohmann::json::parse(response.info().at("info"))["pid"].get<int>();
    absl::StatusOr<std::string> status = ReadFile(absl::StrCat("/proc/", pid, "/status"));
    if (!status.ok()) return 0;
    for (absl::string_view line : absl::StrSplit(*status, '\n')) {
      if (absl::ConsumePrefix(&line, "VmRSS:")) {
        double kib = 0;
        (void)absl::SimpleAtod(absl::StripSuffix(absl::StripAsciiWhitespace(line), " kB"), &kib);
        return kib;
      }
    }
    return 0;
  }

 private:
  const Options& options_;
  CribdProcess& cribd_;
  std::string cgroup_parent_;
};

void Print(const char* what, int parallel, const std::vector<double>& ms) {
  std::printf("%-34s parallel %d: p50 %7.2f ms  p99 %7.2f ms  (n=%zu)\n", what, parallel,
              Percentile(ms, 0.5), Percentile(ms, 0.99), ms.size());
}

int Main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--pods") == 0 && i + 1 < argc) {
      options.pods = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--parallel") == 0 && i + 1 < argc) {
      options.parallel = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--host-network") == 0) {
      options.host_network = true;
    } else if (std::strcmp(argv[i], "--steps") == 0) {
      options.steps = true;
    } else {
      std::fprintf(stderr,
                   "usage: pod_bench [--pods N] [--parallel P] [--host-network] [--steps]\n");
      return 2;
    }
  }
  TempDir dir;
  CribdOptions cribd_options = CribdProcess::OptionsIn(dir.path());
  cribd_options.extra_args = {"--log-level", options.steps ? "debug" : "warn"};
  // A bridge, table and pod CIDR of its own, removed at the end.
  const pid_t self = ::getpid();
  const std::string bridge = absl::StrCat("cbench", self % 100000);
  const std::string table = absl::StrCat("crib_bench", self);
  cribd_options.config_text =
      absl::StrCat("[network]\nbridge = \"", bridge, "\"\nnft_table = \"", table,
                   "\"\npod_cidr = \"10.", 100 + self % 50, ".0.0/16\"\n");
  absl::StatusOr<std::unique_ptr<CribdProcess>> cribd = CribdProcess::Start(cribd_options);
  if (!cribd.ok()) {
    std::fprintf(stderr, "start cribd: %s\n", std::string(cribd.status().message()).c_str());
    return 1;
  }
  const std::string parent = absl::StrCat("/crib-bench-", ::getpid());
  Bench bench(options, **cribd, parent);
  std::printf("%d pods, %s network\n", options.pods, options.host_network ? "host" : "pod");
  bool ok = true;
  double rss = 0;
  for (int parallel : {1, options.parallel}) {
    std::vector<double> run, remove;
    ok = bench.Round(parallel, run, remove, parallel == 1 ? &rss : nullptr) && ok;
    Print("RunPodSandbox", parallel, run);
    Print("StopPodSandbox+RemovePodSandbox", parallel, remove);
  }
  std::printf("pause process RSS: %.0f KiB\n", rss);
  if (options.steps) {
    int shown = 0;
    for (absl::string_view line : absl::StrSplit((*cribd)->Log(), '\n')) {
      if (absl::StrContains(line, " steps: ") && shown++ < 8) {
        std::printf("%s\n", std::string(line).c_str());
      }
    }
  }
  cribd->reset();
  for (const auto& entry : std::filesystem::directory_iterator("/sys/fs/cgroup")) {
    ::rmdir((entry.path().string() + parent).c_str());
  }
  UnmountAllUnder(dir.path());  // the pin directories
  (void)std::system(absl::StrCat("ip link del ", bridge, " 2>/dev/null").c_str());
  (void)std::system(absl::StrCat("nft delete table inet ", table, " 2>/dev/null").c_str());
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace crib::testing

int main(int argc, char** argv) { return crib::testing::Main(argc, argv); }
