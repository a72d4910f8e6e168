// Load on any CRI runtime over its socket (crib, containerd, CRI-O): density and concurrency.
// Prints figures; asserts nothing. benchmarks/compare runs it against crib and containerd.
//
//   cri_load --endpoint unix:///path.sock --image IMAGE [--pid DAEMON_PID] [--log-dir DIR]
//            [--shared-pid] density --pods 100,250,500 [--list-calls 20]
//   cri_load ... concurrency [--clients 8] [--seconds 60]
//
// density: starts pods of one `sleep` container each (RunPodSandbox + CreateContainer +
// StartContainer) up to each count in turn; at each count it prints the start latency of the
// pods it just added beside that of the first ten (the empty machine's), the latency of
// ListPodSandbox, ListContainers and ListContainerStats (--list-calls of each), and the daemon's
// RSS and thread count
// (--pid); at the end the time to stop and remove them all.
// concurrency: `--clients` threads each run pod lifecycles (RunPodSandbox, CreateContainer,
// StartContainer, StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox) for
// `--seconds`; prints lifecycles per second and each call's p50 and p99.
//
// Pods and containers carry the namespace options kubelet sends: the pod's network and ipc, a
// pid namespace of each container's own (with --shared-pid, the pod's: shareProcessNamespace).
// Every pod it makes carries the label crib.load=<pid>; they are all removed on the way out,
// also after a failed call.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/cri/api.grpc.pb.h"
#include "common/files.h"
#include "support/machine.h"
#include "support/percentile.h"

namespace crib::testing {
namespace {

namespace cri = ::runtime::v1;

struct Options {
  std::string endpoint, image, log_dir = "/tmp/cri-load-logs";
  int daemon_pid = 0;
  std::vector<int> pods;
  int clients = 8;
  int seconds = 60;
  int list_calls = 20;
  bool shared_pid = false;
};

std::unique_ptr<grpc::ClientContext> Deadline(absl::Duration d = absl::Seconds(120)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + d));
  return context;
}

double Ms(absl::Time start) { return absl::ToDoubleMilliseconds(absl::Now() - start); }

void PrintLatency(const std::string& what, const std::vector<double>& v) {
  std::printf("  %-36s p50 %8.2f ms  p99 %8.2f ms  (n=%zu)\n", what.c_str(), Percentile(v, 0.5),
              Percentile(v, 0.99), v.size());
}

// A failed call: what, the gRPC code and message.
struct Failure {
  std::string text;
};

void Check(const grpc::Status& s, const std::string& what) {
  if (!s.ok()) throw Failure{absl::StrCat(what, ": ", s.error_code(), " ", s.error_message())};
}

// As kubelet's CRI client: replies up to 16 MiB (a node's lists outgrow gRPC's default 4).
grpc::ChannelArguments KubeletChannelArguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  return args;
}

class Client {
 public:
  explicit Client(const Options& options)
      : options_(options),
        channel_(grpc::CreateCustomChannel(options.endpoint, grpc::InsecureChannelCredentials(),
                                           KubeletChannelArguments())),
        runtime_(cri::RuntimeService::NewStub(channel_)),
        images_(cri::ImageService::NewStub(channel_)) {}

  cri::RuntimeService::Stub& runtime() { return *runtime_; }

  void Pull() {
    cri::PullImageRequest request;
    request.mutable_image()->set_image(options_.image);
    cri::PullImageResponse response;
    Check(images_->PullImage(Deadline(absl::Minutes(5)).get(), request, &response),
          "PullImage " + options_.image);
  }

  cri::PodSandboxConfig PodConfig(const std::string& name) const {
    cri::PodSandboxConfig config;
    config.mutable_metadata()->set_name(name);
    config.mutable_metadata()->set_namespace_("cri-load");
    config.mutable_metadata()->set_uid(absl::StrCat(name, "-", ::getpid()));
    config.set_log_directory(absl::StrCat(options_.log_dir, "/", name));
    (*config.mutable_labels())["crib.load"] = absl::StrCat(::getpid());
    cri::NamespaceOption* ns =
        config.mutable_linux()->mutable_security_context()->mutable_namespace_options();
    ns->set_network(cri::POD);
    ns->set_ipc(cri::POD);
    ns->set_pid(options_.shared_pid ? cri::POD : cri::CONTAINER);
    return config;
  }

  // Each call's latency goes to `times[call]` when `times` is given.
  using Times = std::map<std::string, std::vector<double>>;

  std::string RunPod(const cri::PodSandboxConfig& config, Times* times) {
    cri::RunPodSandboxRequest request;
    *request.mutable_config() = config;
    cri::RunPodSandboxResponse response;
    absl::Time start = absl::Now();
    Check(runtime_->RunPodSandbox(Deadline().get(), request, &response),
          "RunPodSandbox " + config.metadata().name());
    if (times != nullptr) (*times)["RunPodSandbox"].push_back(Ms(start));
    return response.pod_sandbox_id();
  }

  std::string CreateAndStart(const std::string& pod, const cri::PodSandboxConfig& pod_config,
                             Times* times) {
    cri::CreateContainerRequest create;
    create.set_pod_sandbox_id(pod);
    *create.mutable_sandbox_config() = pod_config;
    cri::ContainerConfig& config = *create.mutable_config();
    config.mutable_metadata()->set_name("sleep");
    config.mutable_image()->set_image(options_.image);
    config.add_command("sleep");
    config.add_command("3600");
    config.set_log_path("sleep.log");
    config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
        options_.shared_pid ? cri::POD : cri::CONTAINER);
    cri::CreateContainerResponse created;
    absl::Time start = absl::Now();
    Check(runtime_->CreateContainer(Deadline().get(), create, &created),
          "CreateContainer in " + pod_config.metadata().name());
    if (times != nullptr) (*times)["CreateContainer"].push_back(Ms(start));
    cri::StartContainerRequest start_request;
    start_request.set_container_id(created.container_id());
    cri::StartContainerResponse started;
    start = absl::Now();
    Check(runtime_->StartContainer(Deadline().get(), start_request, &started),
          "StartContainer in " + pod_config.metadata().name());
    if (times != nullptr) (*times)["StartContainer"].push_back(Ms(start));
    return created.container_id();
  }

  void StopAndRemoveContainer(const std::string& id, Times* times) {
    cri::StopContainerRequest stop;
    stop.set_container_id(id);
    stop.set_timeout(0);
    cri::StopContainerResponse stopped;
    absl::Time start = absl::Now();
    Check(runtime_->StopContainer(Deadline().get(), stop, &stopped), "StopContainer " + id);
    if (times != nullptr) (*times)["StopContainer"].push_back(Ms(start));
    cri::RemoveContainerRequest remove;
    remove.set_container_id(id);
    cri::RemoveContainerResponse removed;
    start = absl::Now();
    Check(runtime_->RemoveContainer(Deadline().get(), remove, &removed), "RemoveContainer " + id);
    if (times != nullptr) (*times)["RemoveContainer"].push_back(Ms(start));
  }

  void StopAndRemovePod(const std::string& id, Times* times) {
    cri::StopPodSandboxRequest stop;
    stop.set_pod_sandbox_id(id);
    cri::StopPodSandboxResponse stopped;
    absl::Time start = absl::Now();
    Check(runtime_->StopPodSandbox(Deadline().get(), stop, &stopped), "StopPodSandbox " + id);
    if (times != nullptr) (*times)["StopPodSandbox"].push_back(Ms(start));
    cri::RemovePodSandboxRequest remove;
    remove.set_pod_sandbox_id(id);
    cri::RemovePodSandboxResponse removed;
    start = absl::Now();
    Check(runtime_->RemovePodSandbox(Deadline().get(), remove, &removed), "RemovePodSandbox " + id);
    if (times != nullptr) (*times)["RemovePodSandbox"].push_back(Ms(start));
  }

  // The ids of the pods this process made.
  std::vector<std::string> OwnPods() {
    cri::ListPodSandboxRequest request;
    (*request.mutable_filter()->mutable_label_selector())["crib.load"] = absl::StrCat(::getpid());
    cri::ListPodSandboxResponse response;
    Check(runtime_->ListPodSandbox(Deadline().get(), request, &response), "ListPodSandbox");
    std::vector<std::string> ids;
    for (const cri::PodSandbox& pod : response.items()) ids.push_back(pod.id());
    return ids;
  }

  // Removes every pod this process made (their containers go with them); returns how many.
  size_t RemoveOwnPods() {
    std::vector<std::string> ids = OwnPods();
    for (const std::string& id : ids) {
      try {
        StopAndRemovePod(id, nullptr);
      } catch (const Failure& f) {
        std::fprintf(stderr, "cri_load: cleanup: %s\n", f.text.c_str());
      }
    }
    return ids.size();
  }

 private:
  const Options& options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<cri::RuntimeService::Stub> runtime_;
  std::unique_ptr<cri::ImageService::Stub> images_;
};

// The latency of `calls` List calls of each kind.
void ListLatencies(Client& client, int calls) {
  std::vector<double> pods, containers, stats;
  for (int i = 0; i < calls; ++i) {
    absl::Time start = absl::Now();
    cri::ListPodSandboxResponse pod_list;
    Check(client.runtime().ListPodSandbox(Deadline().get(), {}, &pod_list), "ListPodSandbox");
    pods.push_back(Ms(start));
    start = absl::Now();
    cri::ListContainersResponse container_list;
    Check(client.runtime().ListContainers(Deadline().get(), {}, &container_list), "ListContainers");
    containers.push_back(Ms(start));
    start = absl::Now();
    cri::ListContainerStatsResponse stats_list;
    Check(client.runtime().ListContainerStats(Deadline().get(), {}, &stats_list),
          "ListContainerStats");
    stats.push_back(Ms(start));
  }
  PrintLatency("ListPodSandbox", pods);
  PrintLatency("ListContainers", containers);
  PrintLatency("ListContainerStats", stats);
}

void PrintDaemon(const Options& options) {
  if (options.daemon_pid <= 0) return;
  std::printf("  daemon RSS %.1f MiB, %d threads\n",
              ProcStatusField(options.daemon_pid, "VmRSS") / 1024,
              static_cast<int>(ProcStatusField(options.daemon_pid, "Threads")));
}

void Density(const Options& options) {
  Client client(options);
  client.Pull();
  std::printf("density: pods of one `sleep` container each, started one at a time\n");
  std::vector<double> empty;  // the first ten pods' start latency
  std::vector<std::string> pods;
  for (int target : options.pods) {
    std::vector<double> step;
    absl::Time began = absl::Now();
    while (static_cast<int>(pods.size()) < target) {
      cri::PodSandboxConfig config = client.PodConfig(absl::StrCat("density-", pods.size()));
      absl::Time start = absl::Now();
      std::string pod = client.RunPod(config, nullptr);
      pods.push_back(pod);
      client.CreateAndStart(pod, config, nullptr);
      double ms = Ms(start);
      step.push_back(ms);
      if (empty.size() < 10) empty.push_back(ms);
    }
    std::printf("at %d pods (%zu added in %.1f s):\n", target, step.size(),
                absl::ToDoubleSeconds(absl::Now() - began));
    PrintLatency("pod + container start, first 10 pods", empty);
    PrintLatency(
        absl::StrCat("pod + container start, pods ", target - step.size() + 1, "-", target), step);
    ListLatencies(client, options.list_calls);
    PrintDaemon(options);
    std::fflush(stdout);
  }
  absl::Time start = absl::Now();
  size_t removed = client.RemoveOwnPods();
  std::printf("stop and remove all %zu pods: %.1f s\n", removed,
              absl::ToDoubleSeconds(absl::Now() - start));
  PrintDaemon(options);
}

void Concurrency(const Options& options) {
  Client setup(options);
  setup.Pull();
  std::mutex mu;
  Client::Times all;
  std::atomic<int> lifecycles{0};
  std::atomic<bool> failed{false};
  std::string failure;
  absl::Time deadline = absl::Now() + absl::Seconds(options.seconds);
  absl::Time began = absl::Now();
  std::vector<std::thread> threads;
  for (int c = 0; c < options.clients; ++c) {
    threads.emplace_back([&, c] {
      Client client(options);  // a connection of its own, as separate clients have
      Client::Times times;
      try {
        for (int i = 0; absl::Now() < deadline && !failed; ++i) {
          cri::PodSandboxConfig config = client.PodConfig(absl::StrCat("load-", c, "-", i));
          absl::Time start = absl::Now();
          std::string pod = client.RunPod(config, &times);
          std::string container = client.CreateAndStart(pod, config, &times);
          client.StopAndRemoveContainer(container, &times);
          client.StopAndRemovePod(pod, &times);
          times["whole lifecycle"].push_back(Ms(start));
          ++lifecycles;
        }
      } catch (const Failure& f) {
        std::lock_guard lock(mu);
        if (!failed.exchange(true)) failure = f.text;
      }
      std::lock_guard lock(mu);
      for (auto& [call, v] : times) all[call].insert(all[call].end(), v.begin(), v.end());
    });
  }
  for (std::thread& t : threads) t.join();
  double seconds = absl::ToDoubleSeconds(absl::Now() - began);
  std::printf("concurrency: %d clients for %.1f s: %d pod lifecycles, %.2f per second\n",
              options.clients, seconds, lifecycles.load(), lifecycles / seconds);
  for (const char* call :
       {"RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer",
        "StopPodSandbox", "RemovePodSandbox", "whole lifecycle"}) {
    PrintLatency(call, all[call]);
  }
  PrintDaemon(options);
  if (failed) throw Failure{failure};
}

int Usage() {
  std::fprintf(
      stderr,
      "usage: cri_load --endpoint unix:///SOCK --image IMAGE [--pid N] [--log-dir D]\n"
      "                [--shared-pid]\n"
      "                density --pods N[,N...] [--list-calls N] | concurrency [--clients N] "
      "[--seconds N]\n");
  return 2;
}

int Main(int argc, char** argv) {
  Options options;
  std::string mode;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "--endpoint" && has_value) {
      options.endpoint = argv[++i];
    } else if (arg == "--image" && has_value) {
      options.image = argv[++i];
    } else if (arg == "--pid" && has_value) {
      options.daemon_pid = std::atoi(argv[++i]);
    } else if (arg == "--log-dir" && has_value) {
      options.log_dir = argv[++i];
    } else if (arg == "--pods" && has_value) {
      for (absl::string_view n : absl::StrSplit(argv[++i], ',')) {
        int count = 0;
        if (!absl::SimpleAtoi(n, &count) || count <= 0) return Usage();
        options.pods.push_back(count);
      }
    } else if (arg == "--shared-pid") {
      options.shared_pid = true;
    } else if (arg == "--clients" && has_value) {
      options.clients = std::atoi(argv[++i]);
    } else if (arg == "--seconds" && has_value) {
      options.seconds = std::atoi(argv[++i]);
    } else if (arg == "--list-calls" && has_value) {
      options.list_calls = std::atoi(argv[++i]);
    } else if ((arg == "density" || arg == "concurrency") && mode.empty()) {
      mode = arg;
    } else {
      return Usage();
    }
  }
  if (options.endpoint.empty() || options.image.empty() || mode.empty() ||
      (mode == "density" && options.pods.empty()) || options.clients <= 0 ||
      options.list_calls <= 0) {
    return Usage();
  }
  int status = 0;
  try {
    if (mode == "density") {
      Density(options);
    } else {
      Concurrency(options);
    }
  } catch (const Failure& f) {
    std::fprintf(stderr, "cri_load: %s\n", f.text.c_str());
    status = 1;
  }
  Client cleanup(options);
  try {
    size_t left = cleanup.RemoveOwnPods();
    if (left > 0) std::fprintf(stderr, "cri_load: removed %zu pods left behind\n", left);
  } catch (const Failure& f) {
    std::fprintf(stderr, "cri_load: cleanup: %s\n", f.text.c_str());
    status = 1;
  }
  return status;
}

}  // namespace
}  // namespace crib::testing

int main(int argc, char** argv) { return crib::testing::Main(argc, argv); }
