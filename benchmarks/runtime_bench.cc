// Prints the launcher's figures over N busybox containers (no pods, no images): create +
// start latency, exec latency (p50, p99) and each crib-monitor's RSS. Usage:
//   runtime_bench [containers=20] [--keep]  (--keep leaves them running to inspect)
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "runtime/defaults.h"
#include "runtime/launcher.h"
#include "support/percentile.h"

namespace {

using crib::runtime::Launcher;
using crib::testing::Percentile;

long RssKib(int pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string key;
  long value = 0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> value;
      return value;
    }
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  int count = argc > 1 ? std::atoi(argv[1]) : 20;
  bool keep = argc > 2 && std::string(argv[2]) == "--keep";
  bool seccomp = std::getenv("CRIB_BENCH_NO_SECCOMP") == nullptr;
  std::string base = absl::StrCat("/tmp/crib-bench-", ::getpid());
  std::string rootfs = base + "/rootfs";
  for (const char* d : {"/bin", "/proc", "/dev", "/sys", "/tmp"}) {
    std::filesystem::create_directories(rootfs + d);
  }
  std::filesystem::copy_file("/bin/busybox", rootfs + "/bin/busybox");
  for (const char* applet : {"sh", "sleep", "true"}) {
    std::filesystem::create_symlink("busybox", rootfs + "/bin/" + applet);
  }
  Launcher launcher(CRIB_MONITOR_PATH);
  std::vector<double> start_ms, exec_ms;
  std::vector<long> rss;
  std::vector<std::string> bundles;
  // Also when a step fails: the containers, their cgroups and the scratch directory go.
  absl::Cleanup remove = [&] {
    if (keep) return;
    for (const auto& bundle : bundles) (void)launcher.Remove(bundle);
    std::filesystem::remove_all(base);
  };
  for (int i = 0; i < count; ++i) {
    std::string bundle = absl::StrCat(base, "/c", i);
    std::filesystem::create_directories(bundle);
    crib::runtime::Spec spec;
    spec.process.args = {"sleep", "100000"};
    spec.process.env = {"PATH=/bin"};
    crib::runtime::SetCapabilities(crib::runtime::DefaultCapabilities(), &spec.process);
    spec.root_path = rootfs;
    spec.mounts = crib::runtime::DefaultMounts();
    spec.linux_spec.namespaces = {{"pid", ""}, {"mount", ""}, {"ipc", ""}, {"uts", ""}};
    spec.linux_spec.cgroups_path = absl::StrCat("crib-bench-", ::getpid(), "-", i);
    if (seccomp)
      spec.linux_spec.seccomp =
          crib::runtime::RuntimeDefaultSeccomp(crib::runtime::DefaultCapabilities());
    spec.linux_spec.masked_paths = crib::runtime::DefaultMaskedPaths();
    spec.linux_spec.readonly_paths = crib::runtime::DefaultReadonlyPaths();
    absl::Time t0 = absl::Now();
    bundles.push_back(bundle);
    auto created = launcher.Create(absl::StrCat("c", i), bundle, spec, bundle + "/log");
    if (!created.ok()) {
      std::fprintf(stderr, "%s\n", created.status().ToString().c_str());
      return 1;
    }
    absl::Status started = launcher.Start(bundle);
    if (!started.ok()) {
      std::fprintf(stderr, "%s\n", started.ToString().c_str());
      return 1;
    }
    start_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    crib::runtime::ExecOptions exec;
    exec.args = {"true"};
    absl::Time t1 = absl::Now();
    if (!launcher.Exec(bundle, exec).ok()) return 1;
    exec_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t1));
    rss.push_back(RssKib(created->monitor_pid));
  }
  std::printf("containers: %d\n", count);
  std::printf("create+start latency: p50 %.1f ms, p99 %.1f ms\n", Percentile(start_ms, 0.5),
              Percentile(start_ms, 0.99));
  std::printf("exec latency:         p50 %.1f ms, p99 %.1f ms\n", Percentile(exec_ms, 0.5),
              Percentile(exec_ms, 0.99));
  std::vector<double> rss_d(rss.begin(), rss.end());
  std::printf("crib-monitor RSS:     p50 %.0f KiB, max %.0f KiB\n", Percentile(rss_d, 0.5),
              Percentile(rss_d, 1.0));
  return 0;
}
