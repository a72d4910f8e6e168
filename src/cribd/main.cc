// cribd: loads the configuration, takes the instance locks, opens the store, serves the CRI
// on its unix socket (and Prometheus metrics, if configured) and shuts down gracefully on
// SIGTERM or SIGINT. A shutdown never touches pods or containers: they run on without the
// daemon.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/heap.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/version.h"
#include "config/config.h"
#include "container/service.h"
#include "container/stats.h"
#include "cribd/flags.h"
#include "cribd/instance_lock.h"
#include "cribd/socket_path.h"
#include "image/image_store.h"
#include "network/backend.h"
#include "pod/service.h"
#include "pod/userns.h"
#include "server/image_service.h"
#include "server/interceptor.h"
#include "server/metrics_endpoint.h"
#include "server/runtime_service.h"
#include "store/store.h"
#include "stream/launcher_backend.h"
#include "stream/server.h"

namespace crib {
namespace {

// CRI lists (ListContainers on a busy node) and image configs exceed gRPC's 4 MiB default.
constexpr int kMaxMessageBytes = 16 << 20;

absl::StatusOr<Config> LoadEffectiveConfig(const Flags& flags) {
  ASSIGN_OR_RETURN(Config config, LoadConfig(flags.config_path, flags.config_path_given));
  RETURN_IF_ERROR(ApplyOverrides(flags.overrides, config));
  return config;
}

// Blocks until SIGTERM or SIGINT arrives; returns its number. Meanwhile, once a second, hands
// the heap's free pages back after a burst of calls (heap::IdleTrimmer).
int WaitForStopSignal(const sigset_t& signals) {
  heap::IdleTrimmer trimmer;
  const struct timespec tick = {1, 0};
  for (;;) {
    const int signal = ::sigtimedwait(&signals, nullptr, &tick);
    if (signal > 0) return signal;
    if (errno == EAGAIN) trimmer.Tick();
  }
}

absl::Status Serve(const Config& config, const sigset_t& stop_signals) {
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(MakeDirs(config.root_dir, 0711));
  RETURN_IF_ERROR(MakeDirs(config.state_dir, 0711));
  std::vector<InstanceLock> locks;
  for (const std::string* dir : {&config.state_dir, &config.root_dir}) {
    ASSIGN_OR_RETURN(InstanceLock lock, InstanceLock::Acquire(*dir));
    locks.push_back(std::move(lock));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<store::Store> store,
                   store::Store::Open(absl::StrCat(config.root_dir, "/metadata.db")));
  std::unique_ptr<network::NetworkBackend> network = network::MakeNetworkBackend(config, *store);

  ASSIGN_OR_RETURN(std::unique_ptr<pod::PodService> pods,
                   pod::PodService::Create(config, *network, *store));
  ASSIGN_OR_RETURN(std::unique_ptr<image::ImageStore> images,
                   image::ImageStore::Open(config, *store));

  ASSIGN_OR_RETURN(std::unique_ptr<container::ContainerService> containers,
                   container::ContainerService::Create(config, *store, *pods, *images));

  // Recovery: what a crash interrupted is undone or finished, what ended while cribd was away
  // is recorded, and what no record names is removed.
  const absl::Time recovery_start = absl::Now();
  ASSIGN_OR_RETURN(container::ContainerRecovery recovered_containers, containers->Recover());
  ASSIGN_OR_RETURN(pod::PodRecovery recovered_pods, pods->Recover());
  spdlog::info(
      "recovered in {}: {} pods ({} no longer ready), {} containers ({} exited while cribd was "
      "away, {} without their monitor, {} whose start was recorded late); undone {} pod runs and "
      "{} container creates, finished "
      "{} pod and {} container removals, removed {} orphaned objects",
      absl::FormatDuration(absl::Trunc(absl::Now() - recovery_start, absl::Microseconds(100))),
      recovered_pods.pods, recovered_pods.not_ready, recovered_containers.containers,
      recovered_containers.exited_while_away, recovered_containers.monitors_gone,
      recovered_containers.starts_recorded, recovered_pods.runs_undone,
      recovered_containers.creates_undone, recovered_pods.removals_finished,
      recovered_containers.removals_finished,
      recovered_pods.orphans + recovered_containers.orphans);

  // Snapshots that only containers still use are known now: the rest of what a removed
  // image or a crash left can go.
  if (absl::Status s = images->CollectGarbage(); !s.ok()) {
    spdlog::warn("image garbage collection at start-up: {}", s.message());
  }

  // The streaming server behind Exec, Attach and PortForward.
  stream::LauncherBackend stream_backend(
      containers->launcher(),
      {[&containers](absl::string_view id) { return containers->BundleOf(std::string(id)); },
       [&pods](absl::string_view id) { return pods->NetnsOf(std::string(id)); }});
  ASSIGN_OR_RETURN(
      std::unique_ptr<stream::Server> streams,
      stream::Server::Start(stream::ServerOptionsFromConfig(config.stream), &stream_backend));

  ASSIGN_OR_RETURN(std::unique_ptr<container::StatsService> stats,
                   container::StatsService::Create(config, *containers, *pods));

  server::Dependencies deps{config,  *network,    *store,   *pods,
                            *images, *containers, *streams, *stats};
  server::RuntimeService runtime_service(deps);
  server::ImageService image_service(deps);

  std::unique_ptr<server::MetricsEndpoint> metrics;
  if (!config.metrics_address.empty()) {
    ASSIGN_OR_RETURN(metrics, server::MetricsEndpoint::Start(config.metrics_address, deps));
  }

  RETURN_IF_ERROR(PrepareSocketPath(config.socket));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix:", config.socket), grpc::InsecureServerCredentials());
  builder.RegisterService(&runtime_service);
  builder.RegisterService(&image_service);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(server::MakeRpcLogInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  // The socket must never be reachable by others, not even between bind and chmod.
  const mode_t old_umask = ::umask(0117);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old_umask);
  if (server == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve on unix socket ", config.socket, " (see the gRPC error above)"));
  }
  if (::chmod(config.socket.c_str(), 0660) != 0) {
    absl::Status status = ErrnoStatus(errno, absl::StrCat("chmod 0660 ", config.socket));
    server->Shutdown();
    ::unlink(config.socket.c_str());
    return status;
  }
  spdlog::info("cribd {} serving CRI v1 on {} (root {}, state {}, cgroup driver {}) in {}",
               kRuntimeVersion, config.socket, config.root_dir, config.state_dir,
               CgroupDriverName(config.cgroup_driver), absl::FormatDuration(absl::Now() - start));
  // Logs whether pods may have user namespaces here, and why not.
  (void)pod::UserNamespaceSupport(config.root_dir);
  // Under systemd (Type=notify, etc/crib.service): the socket serves, so the unit is started.
  // Without NOTIFY_SOCKET this does nothing.
  sd_notifyf(0, "READY=1\nMAINPID=%d\nSTATUS=serving CRI v1 on %s", static_cast<int>(::getpid()),
             config.socket.c_str());

  const int signal = WaitForStopSignal(stop_signals);
  sd_notify(0, "STOPPING=1");
  spdlog::info("received {}: no new calls; in-flight calls have {} to finish",
               absl::StrCat("SIG", ::sigabbrev_np(signal)),
               absl::FormatDuration(config.shutdown_timeout));
  server->Shutdown(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(config.shutdown_timeout));
  server->Wait();
  streams->Stop();
  if (::unlink(config.socket.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("{}", ErrnoStatus(errno, absl::StrCat("remove socket ", config.socket)).message());
  }
  spdlog::info("cribd stopped; pods and containers keep running");
  return absl::OkStatus();
}

int Main(int argc, char** argv) {
  // Two arenas: cribd's threads mostly wait in system calls, and glibc's default (8 per core)
  // kept ~2 MiB of free pages per busy thread.
  heap::LimitArenas(2);
  absl::StatusOr<Flags> flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "cribd: %s\n%s", std::string(flags.status().message()).c_str(), kUsage);
    return 2;
  }
  if (flags->help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (flags->print_version) {
    std::printf("crib %s\n", kRuntimeVersion);
    return 0;
  }
  if (flags->print_default_config) {
    std::fputs(kDefaultConfigText, stdout);
    return 0;
  }
  absl::StatusOr<Config> config = LoadEffectiveConfig(*flags);
  if (!config.ok()) {
    std::fprintf(stderr, "cribd: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  SetupLogging(*ParseLogLevel(config->log_level));

  // Stop signals are taken synchronously by the main thread; they are blocked before any
  // other thread exists so that every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  if (absl::Status status = Serve(*config, stop_signals); !status.ok()) {
    spdlog::error("cribd: {}", status.message());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace crib

int main(int argc, char** argv) { return crib::Main(argc, argv); }
