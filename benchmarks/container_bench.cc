// Container benchmark, through a real cribd with busybox from a real registry on loopback:
// over N pods each with one container, the latency of RunPodSandbox + CreateContainer +
// StartContainer (and of each call), ExecSync latency, and the RSS of each crib-monitor and
// of cribd. Prints figures; asserts nothing.
//
//   container_bench [--pods N] [--execs N] [--pod-network] [--steps] [--systemd]
//                   [--handlers crib,runc,crun] [--spacing MS]
//
// --spacing waits MS milliseconds before each timed call, as kubelet's calls come apart from
// each other, instead of one right after the other: a cost the kernel takes only after a quiet
// spell (an RCU grace period behind a cgroup move, for one) shows there.
//
// --handlers runs the pods of each runtime handler in turn (crib: crib's own launcher; runc
// and crun: Debian's, configured as in the README), and adds StopContainer and the pods'
// stop and removal to the figures.
//
// --systemd runs cribd with the systemd cgroup driver; run it in a systemd of its own:
//   python3 tests/systemd/systemd_lab.py run build/benchmarks/container_bench --systemd
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench_lab.h"
#include "common/files.h"
#include "nlohmann/json.hpp"
#include "support/cri_calls.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/percentile.h"
#include "support/registry.h"

namespace crib::testing {
namespace {

void Print(const char* what, const std::vector<double>& v, const char* unit = "ms") {
  std::printf("%-44s p50 %8.2f %s  p99 %8.2f %s  (n=%zu)\n", what, Percentile(v, 0.5), unit,
              Percentile(v, 0.99), unit, v.size());
}

// The p50 of each step over every operation of one kind in cribd's debug log, from its lines
// "<kind><id><what>step 120us, step 1.2ms, ...", in the order of the steps; with 100
// operations or more, also over the first and the last tenth of them (what grows with the
// number of pods).
void PrintSteps(const std::string& log,
                const std::vector<std::pair<std::string, std::string>>& kinds) {
  for (const auto& [kind, what] : kinds) {
    std::vector<std::string> order;
    std::vector<std::map<std::string, double>> operations;  // step to us, in log order
    for (absl::string_view line : absl::StrSplit(log, '\n')) {
      const size_t at = line.find(what);
      const size_t k = line.find(absl::StrCat("debug ", kind));
      if (at == absl::string_view::npos || k == absl::string_view::npos) continue;
      // "pod <id> steps:" is not "pod <id> removal steps:"; the id has no space.
      const absl::string_view id = line.substr(k + 6 + kind.size(), at - k - 6 - kind.size());
      if (id.empty() || absl::StrContains(id, ' ')) continue;
      std::map<std::string, double>& op = operations.emplace_back();
      for (absl::string_view part : absl::StrSplit(line.substr(at + what.size()), ", ")) {
        std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits(' ', 1));
        absl::Duration d;
        if (!absl::ParseDuration(kv.second, &d)) continue;
        if (std::find(order.begin(), order.end(), kv.first) == order.end()) {
          order.push_back(kv.first);
        }
        op[kv.first] = absl::ToDoubleMicroseconds(d);
      }
    }
    auto print = [&](size_t from, size_t to, const std::string& over) {
      std::string text;
      for (const std::string& step : order) {
        std::vector<double> us;
        for (size_t i = from; i < to; ++i) {
          if (auto it = operations[i].find(step); it != operations[i].end()) {
            us.push_back(it->second);
          }
        }
        if (us.empty()) continue;
        absl::StrAppend(&text, text.empty() ? "" : ", ", step, " ",
                        static_cast<int>(Percentile(us, 0.5)));
      }
      std::printf("%s%s(p50 us over %s): %s\n", kind.c_str(), std::string(what).substr(1).c_str(),
                  over.c_str(), text.c_str());
    };
    const size_t n = operations.size();
    if (n == 0) continue;
    print(0, n, std::to_string(n));
    if (n >= 100) {
      print(0, n / 10, absl::StrCat("the first ", n / 10));
      print(n - n / 10, n, absl::StrCat("the last ", n / 10));
    }
  }
}

bool RunPods(BenchLab& bench, const std::string& handler, int pods, int execs, bool pod_network,
             bool steps, bool systemd, absl::Duration spacing);

int Main(int argc, char** argv) {
  int pods = 50, execs = 200;
  bool pod_network = false;
  bool steps = false;  // print cribd's per-step timings of a few pods and containers
  bool systemd = false;
  std::vector<std::string> handlers = {""};
  int spacing_ms = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--pods") == 0 && i + 1 < argc) {
      pods = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--execs") == 0 && i + 1 < argc) {
      execs = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--pod-network") == 0) {
      pod_network = true;
    } else if (std::strcmp(argv[i], "--steps") == 0) {
      steps = true;
    } else if (std::strcmp(argv[i], "--systemd") == 0) {
      systemd = true;
    } else if (std::strcmp(argv[i], "--handlers") == 0 && i + 1 < argc) {
      handlers = absl::StrSplit(argv[++i], ',', absl::SkipEmpty());
    } else if (std::strcmp(argv[i], "--spacing") == 0 && i + 1 < argc) {
      spacing_ms = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: container_bench [--pods N] [--execs N] [--pod-network] "
                   "[--steps] [--systemd] [--handlers crib,runc,crun] [--spacing MS]\n");
      return 2;
    }
  }
  std::string runtimes;
  for (const char* handler : {"runc", "crun"}) {
    absl::StrAppend(&runtimes, "[runtimes.", handler, "]\npath = \"",
                    OciRuntimePath(handler, CRIB_SOURCE_DIR), "\"\n");
  }
  absl::StatusOr<std::unique_ptr<BenchLab>> lab =
      BenchLab::Start("cb", 100 + ::getpid() % 50, steps ? "debug" : "warn", systemd, runtimes);
  if (!lab.ok()) {
    std::fprintf(stderr, "set up: %s\n", std::string(lab.status().message()).c_str());
    return 1;
  }
  bool ok = true;
  for (const std::string& handler : handlers) {
    ok = RunPods(**lab, handler, pods, execs, pod_network, steps, systemd,
                 absl::Milliseconds(spacing_ms)) &&
         ok;
  }
  return ok ? 0 : 1;
}

// `pods` pods of `handler` with one container each, their figures, then their removal, timed
// call by call.
bool RunPods(BenchLab& bench, const std::string& handler, int pods, int execs, bool pod_network,
             bool steps, bool systemd, absl::Duration spacing) {
  auto runtime = bench.cribd().Runtime();
  const std::string image = bench.image();
  std::vector<double> total, run_ms, create_ms, start_ms, exec_ms, monitor_rss, monitor_anon;
  std::vector<double> stop_ms;
  std::vector<std::string> pod_ids, container_ids;
  bool ok = true;
  for (int i = 0; i < pods && ok; ++i) {
    cri::RunPodSandboxRequest run;
    *run.mutable_config() = bench.PodConfig(i, pod_network);
    run.mutable_config()->mutable_metadata()->set_name(
        absl::StrCat(run.config().metadata().name(), handler.empty() ? "" : "-", handler));
    run.mutable_config()->mutable_metadata()->set_uid(
        absl::StrCat(run.config().metadata().uid(), handler));
    run.set_runtime_handler(handler);
    cri::PodSandboxConfig* config = run.mutable_config();
    cri::CreateContainerRequest create;
    cri::ContainerConfig* c = create.mutable_config();
    c->mutable_metadata()->set_name("sleeper");
    c->mutable_image()->set_image(image);
    // Ends at SIGTERM (a pid 1 without a handler ignores it), so that StopContainer is timed.
    for (const char* arg : {"sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"}) {
      c->add_command(arg);
    }
    c->set_log_path("sleeper/0.log");
    c->mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        cri::CONTAINER);
    *create.mutable_sandbox_config() = *config;

    absl::SleepFor(spacing);
    const absl::Time t0 = absl::Now();
    cri::RunPodSandboxResponse ran;
    grpc::Status s =
        runtime->RunPodSandbox(ContextWithDeadline(absl::Seconds(60)).get(), run, &ran);
    const absl::Time t1 = absl::Now();
    cri::CreateContainerResponse created;
    absl::Duration waited;  // the spacing before the create and the start, not timed
    if (s.ok()) {
      pod_ids.push_back(ran.pod_sandbox_id());  // removed below, also when its container fails
      create.set_pod_sandbox_id(ran.pod_sandbox_id());
      absl::SleepFor(spacing);
      waited += spacing;
      s = runtime->CreateContainer(ContextWithDeadline(absl::Seconds(60)).get(), create, &created);
    }
    const absl::Time t2 = absl::Now();
    if (s.ok()) {
      cri::StartContainerRequest start;
      start.set_container_id(created.container_id());
      cri::StartContainerResponse started;
      absl::SleepFor(spacing);
      waited += spacing;
      s = runtime->StartContainer(ContextWithDeadline(absl::Seconds(60)).get(), start, &started);
    }
    const absl::Time t3 = absl::Now();
    if (!s.ok()) {
      std::fprintf(stderr, "pod %d: %s\n", i, s.error_message().c_str());
      ok = false;
      break;
    }
    run_ms.push_back(absl::ToDoubleMilliseconds(t1 - t0));
    create_ms.push_back(absl::ToDoubleMilliseconds(t2 - t1 - spacing));
    start_ms.push_back(absl::ToDoubleMilliseconds(t3 - t2 - spacing));
    total.push_back(absl::ToDoubleMilliseconds(t3 - t0 - waited));
    container_ids.push_back(created.container_id());
  }
  // Each monitor's resident set once everything runs (busy: just started), and after a
  // second and a half without work (idle monitors drop their executable's mappings).
  std::vector<int> monitor_pids;
  for (const std::string& id : container_ids) {
    absl::StatusOr<std::string> pid_text =
        ReadFile(absl::StrCat(bench.state_dir(), "/containers/", id, "/monitor.pid"));
    int pid = 0;
    if (pid_text.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid_text), &pid)) {
      monitor_pids.push_back(pid);
    }
  }
  std::vector<double> monitor_busy_rss;
  for (int pid : monitor_pids) monitor_busy_rss.push_back(ProcStatusField(pid, "VmRSS"));
  absl::SleepFor(absl::Milliseconds(1500));
  for (int pid : monitor_pids) {
    monitor_rss.push_back(ProcStatusField(pid, "VmRSS"));
    monitor_anon.push_back(ProcStatusField(pid, "RssAnon"));
  }
  for (int i = 0; i < execs && ok && !container_ids.empty(); ++i) {
    cri::ExecSyncRequest exec;
    exec.set_container_id(container_ids[i % container_ids.size()]);
    exec.add_cmd("true");
    cri::ExecSyncResponse response;
    absl::SleepFor(spacing);
    const absl::Time t0 = absl::Now();
    grpc::Status s =
        runtime->ExecSync(ContextWithDeadline(absl::Seconds(30)).get(), exec, &response);
    exec_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
    if (!s.ok() || response.exit_code() != 0) {
      std::fprintf(stderr, "exec: %s\n", s.error_message().c_str());
      ok = false;
    }
  }
  std::printf(
      "%d pods (%s network, %s cgroup driver, runtime handler %s), one busybox "
      "container each, %s\n",
      pods, pod_network ? "pod" : "host", systemd ? "systemd" : "cgroupfs",
      handler.empty() ? "\"\" (crib)" : handler.c_str(),
      spacing == absl::ZeroDuration()
          ? "calls one right after the other"
          : absl::StrCat(absl::ToInt64Milliseconds(spacing), " ms before each call").c_str());
  Print("RunPodSandbox+CreateContainer+StartContainer", total);
  Print("  RunPodSandbox", run_ms);
  Print("  CreateContainer", create_ms);
  Print("  StartContainer", start_ms);
  Print("ExecSync (true)", exec_ms);
  Print("crib-monitor VmRSS, just started", monitor_busy_rss, "KiB");
  Print("crib-monitor VmRSS, idle", monitor_rss, "KiB");
  Print("crib-monitor RssAnon, idle", monitor_anon, "KiB");
  std::printf("cribd VmRSS with %zu containers: %.0f KiB\n", container_ids.size(),
              ProcStatusField(bench.cribd().pid(), "VmRSS"));

  if (steps) {
    PrintSteps(bench.cribd().Log(),
               {{"pod ", " steps: "}, {"container ", " steps: "}, {"network: pod ", " steps: "}});
  }
  std::vector<double> remove_ms, stop_pod_ms, remove_pod_ms;
  for (size_t i = 0; i < pod_ids.size(); ++i) {
    // The last pod has no container when its creation failed: it is removed, not timed.
    const bool timed = i < container_ids.size();
    const absl::Time t0 = absl::Now();
    grpc::Status s;
    if (timed) {
      cri::StopContainerRequest stop;
      stop.set_container_id(container_ids[i]);
      stop.set_timeout(10);
      cri::StopContainerResponse stopped;
      s = runtime->StopContainer(ContextWithDeadline(absl::Seconds(30)).get(), stop, &stopped);
    }
    const absl::Time t1 = absl::Now();
    if (timed && s.ok()) {
      cri::RemoveContainerRequest remove;
      remove.set_container_id(container_ids[i]);
      cri::RemoveContainerResponse removed;
      s = runtime->RemoveContainer(ContextWithDeadline(absl::Seconds(30)).get(), remove, &removed);
    }
    const absl::Time t2 = absl::Now();
    if (s.ok()) s = StopPod(*runtime, pod_ids[i]);
    const absl::Time t3 = absl::Now();
    if (s.ok()) s = RemovePod(*runtime, pod_ids[i]);
    if (!s.ok()) {
      std::fprintf(stderr, "stop and remove pod: %s\n", s.error_message().c_str());
      ok = false;
      continue;
    }
    if (!timed) continue;
    stop_ms.push_back(absl::ToDoubleMilliseconds(t1 - t0));
    remove_ms.push_back(absl::ToDoubleMilliseconds(t2 - t1));
    stop_pod_ms.push_back(absl::ToDoubleMilliseconds(t3 - t2));
    remove_pod_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t3));
  }
  Print("StopContainer (SIGTERM)", stop_ms);
  Print("RemoveContainer", remove_ms);
  Print("StopPodSandbox", stop_pod_ms);
  Print("RemovePodSandbox", remove_pod_ms);
  if (steps) {
    PrintSteps(bench.cribd().Log(),
               {{"pod ", " removal steps: "}, {"container ", " removal steps: "}});
  }
  std::printf("\n");
  return ok;
}

}  // namespace
}  // namespace crib::testing

int main(int argc, char** argv) { return crib::testing::Main(argc, argv); }
