// Stats benchmark, through a real cribd with busybox from a real registry on loopback: with
// N running containers (P pods on the bridge network, N/P containers each), the latency of
// ListContainerStats, ListPodSandboxStats and ListPodSandboxMetrics (beside ListContainers,
// which reads the same records without stats), and cribd's CPU use while a client polls
// ListContainerStats and ListPodSandboxStats once a second (beside its CPU use with nobody
// polling). Prints figures; asserts nothing.
//
//   stats_bench [--pods P] [--per-pod N] [--calls N] [--poll-seconds S] [--host-network]
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "bench_lab.h"
#include "common/files.h"
#include "support/cri_calls.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/percentile.h"
#include "support/registry.h"

namespace crib::testing {
namespace {

void Print(const char* what, const std::vector<double>& v) {
  std::printf("%-34s p50 %7.2f ms  p99 %7.2f ms  (n=%zu)\n", what, Percentile(v, 0.5),
              Percentile(v, 0.99), v.size());
}

// utime + stime of a process, in seconds.
double CpuSeconds(pid_t pid) {
  absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return 0;
  const size_t paren = stat->rfind(')');
  std::vector<std::string> f = absl::StrSplit(stat->substr(paren + 2), ' ');
  // Fields 14 and 15 of the line; the first after ')' is field 3.
  double utime = 0, stime = 0;
  (void)absl::SimpleAtod(f[11], &utime);
  (void)absl::SimpleAtod(f[12], &stime);
  return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int Main(int argc, char** argv) {
  int pods = 25, per_pod = 2, calls = 200, poll_seconds = 60;
  bool host_network = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--pods") == 0 && i + 1 < argc) {
      pods = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--per-pod") == 0 && i + 1 < argc) {
      per_pod = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--calls") == 0 && i + 1 < argc) {
      calls = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--poll-seconds") == 0 && i + 1 < argc) {
      poll_seconds = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--host-network") == 0) {
      host_network = true;
    } else {
      std::fprintf(stderr,
                   "usage: stats_bench [--pods P] [--per-pod N] [--calls N] [--poll-seconds S] "
                   "[--host-network]\n");
      return 2;
    }
  }
  absl::StatusOr<std::unique_ptr<BenchLab>> lab =
      BenchLab::Start("sb", 150 + ::getpid() % 50, "warn");
  if (!lab.ok()) {
    std::fprintf(stderr, "set up: %s\n", std::string(lab.status().message()).c_str());
    return 1;
  }
  auto runtime = (*lab)->cribd().Runtime();
  const std::string image = (*lab)->image();
  std::vector<std::string> pod_ids;
  int containers = 0;
  bool ok = true;
  for (int i = 0; i < pods && ok; ++i) {
    cri::RunPodSandboxRequest run;
    *run.mutable_config() = (*lab)->PodConfig(i, !host_network);
    cri::PodSandboxConfig* config = run.mutable_config();
    cri::RunPodSandboxResponse ran;
    grpc::Status s =
        runtime->RunPodSandbox(ContextWithDeadline(absl::Seconds(60)).get(), run, &ran);
    if (!s.ok()) {
      std::fprintf(stderr, "pod %d: %s\n", i, s.error_message().c_str());
      ok = false;
      break;
    }
    pod_ids.push_back(ran.pod_sandbox_id());
    for (int j = 0; j < per_pod && ok; ++j) {
      cri::CreateContainerRequest create;
      create.set_pod_sandbox_id(ran.pod_sandbox_id());
      *create.mutable_sandbox_config() = *config;
      cri::ContainerConfig* c = create.mutable_config();
      c->mutable_metadata()->set_name(absl::StrCat("sleeper-", j));
      c->mutable_image()->set_image(image);
      c->add_command("sleep");
      c->add_command("100000");
      c->set_log_path(absl::StrCat("sleeper-", j, "/0.log"));
      c->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
          cri::CONTAINER);
      cri::CreateContainerResponse created;
      s = runtime->CreateContainer(ContextWithDeadline(absl::Seconds(60)).get(), create, &created);
      if (s.ok()) {
        cri::StartContainerRequest start;
        start.set_container_id(created.container_id());
        cri::StartContainerResponse started;
        s = runtime->StartContainer(ContextWithDeadline(absl::Seconds(60)).get(), start, &started);
      }
      if (!s.ok()) {
        std::fprintf(stderr, "container: %s\n", s.error_message().c_str());
        ok = false;
      }
      ++containers;
    }
  }
  // Let the writable-layer sampler measure every layer once.
  absl::SleepFor(absl::Seconds(3));

  std::vector<double> list_containers, list_pods, pod_metrics, plain_list;
  size_t container_stats = 0, pod_stats = 0;
  for (int i = 0; i < calls && ok; ++i) {
    cri::ListContainerStatsResponse cs;
    absl::Time t0 = absl::Now();
    grpc::Status s = runtime->ListContainerStats(ContextWithDeadline().get(), {}, &cs);
    list_containers.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    container_stats = cs.stats_size();
    cri::ListPodSandboxStatsResponse ps;
    t0 = absl::Now();
    if (s.ok()) s = runtime->ListPodSandboxStats(ContextWithDeadline().get(), {}, &ps);
    list_pods.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    pod_stats = ps.stats_size();
    cri::ListPodSandboxMetricsResponse pm;
    t0 = absl::Now();
    if (s.ok()) s = runtime->ListPodSandboxMetrics(ContextWithDeadline().get(), {}, &pm);
    pod_metrics.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    // The same containers without their stats: what reading the records costs.
    cri::ListContainersResponse plain;
    t0 = absl::Now();
    if (s.ok()) s = runtime->ListContainers(ContextWithDeadline().get(), {}, &plain);
    plain_list.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    if (!s.ok()) {
      std::fprintf(stderr, "stats: %s\n", s.error_message().c_str());
      ok = false;
    }
  }

  // cribd's CPU while nobody asks, then while a client polls both lists once a second.
  const pid_t pid = (*lab)->cribd().pid();
  double cpu0 = CpuSeconds(pid);
  absl::Time w0 = absl::Now();
  absl::SleepFor(absl::Seconds(poll_seconds));
  const double idle_cores = (CpuSeconds(pid) - cpu0) / absl::ToDoubleSeconds(absl::Now() - w0);
  cpu0 = CpuSeconds(pid);
  w0 = absl::Now();
  for (int i = 0; i < poll_seconds && ok; ++i) {
    const absl::Time tick = absl::Now();
    cri::ListContainerStatsResponse cs;
    cri::ListPodSandboxStatsResponse ps;
    if (!runtime->ListContainerStats(ContextWithDeadline().get(), {}, &cs).ok() ||
        !runtime->ListPodSandboxStats(ContextWithDeadline().get(), {}, &ps).ok()) {
      ok = false;
    }
    absl::SleepFor(absl::Seconds(1) - (absl::Now() - tick));
  }
  const double polled_cores = (CpuSeconds(pid) - cpu0) / absl::ToDoubleSeconds(absl::Now() - w0);

  std::printf(
      "%d running containers in %d pods (%s network); %zu container and %zu pod stats "
      "per call\n",
      containers, pods, host_network ? "host" : "pod", container_stats, pod_stats);
  Print("ListContainerStats", list_containers);
  Print("ListPodSandboxStats", list_pods);
  Print("ListPodSandboxMetrics", pod_metrics);
  Print("ListContainers (no stats, baseline)", plain_list);
  std::printf("cribd CPU, idle over %d s:              %.2f%% of a core\n", poll_seconds,
              100 * idle_cores);
  std::printf("cribd CPU, both lists polled every 1 s: %.2f%% of a core\n", 100 * polled_cores);

  for (const std::string& id : pod_ids) {
    grpc::Status s = RemovePod(*runtime, id);
    if (!s.ok()) {
      std::fprintf(stderr, "remove pod: %s\n", s.error_message().c_str());
      ok = false;
    }
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace crib::testing

int main(int argc, char** argv) { return crib::testing::Main(argc, argv); }
