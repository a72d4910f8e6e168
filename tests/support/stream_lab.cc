#include "support/stream_lab.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "runtime/defaults.h"
#include "runtime/spec.h"
#include "support/machine.h"
#include "support/stream_client.h"

namespace crib::testing {
namespace {

int Run(const std::string& command) {
  int rc = std::system((command + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string ReadAll(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  return text.ok() ? *text : std::string();
}

}  // namespace

StreamLab::StreamLab(std::string monitor_path)
    : monitor_path_(std::move(monitor_path)), launcher_(monitor_path_) {
  static std::atomic<int> labs{0};
  prefix_ = absl::StrCat("crib-st-", ::getpid(), "-", labs++);
  dir_ = absl::StrCat("/tmp/", prefix_);
  rootfs_ = dir_ + "/rootfs";
  for (const char* d : {"", "/bin", "/etc", "/proc", "/sys", "/dev", "/tmp", "/root"}) {
    std::filesystem::create_directories(rootfs_ + d);
  }
  std::filesystem::copy_file("/bin/busybox", rootfs_ + "/bin/busybox");
  Run(absl::StrCat(rootfs_, "/bin/busybox --install -s ", rootfs_, "/bin"));
  for (const auto& entry : std::filesystem::directory_iterator(rootfs_ + "/bin")) {
    if (entry.is_symlink()) {
      std::filesystem::remove(entry.path());
      std::filesystem::create_symlink("busybox", entry.path());
    }
  }
  ::chmod((rootfs_ + "/tmp").c_str(), 01777);
  std::ofstream(rootfs_ + "/etc/passwd") << "root:x:0:0:root:/root:/bin/sh\n";
  std::ofstream(rootfs_ + "/etc/group") << "root:x:0:\n";
  stream::LauncherBackend::Resolvers resolvers;
  resolvers.container_bundle = [this](absl::string_view id) -> absl::StatusOr<std::string> {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = bundles_.find(std::string(id));
    if (it == bundles_.end())
      return absl::NotFoundError(absl::StrCat("container ", id, " not found"));
    return it->second;
  };
  resolvers.sandbox_netns = [this](absl::string_view id) -> absl::StatusOr<std::string> {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = netns_.find(std::string(id));
    if (it == netns_.end())
      return absl::NotFoundError(absl::StrCat("pod sandbox ", id, " not found"));
    return absl::StrCat("/run/netns/", it->second);
  };
  backend_ = std::make_unique<stream::LauncherBackend>(launcher_, std::move(resolvers));
}

StreamLab::~StreamLab() {
  server_.reset();  // closes the connections first (their processes die with them)
  for (const auto& [id, bundle] : bundles_) (void)launcher_.Remove(bundle);
  for (const auto& [pod, name] : netns_) Run(absl::StrCat("ip netns del ", name));
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

absl::Status StreamLab::StartServer(const stream::ServerOptions& options) {
  server_.reset();
  absl::StatusOr<std::unique_ptr<stream::Server>> server =
      stream::Server::Start(options, backend_.get());
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  return absl::OkStatus();
}

std::string StreamLab::bundle(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return bundles_[id];
}

std::string StreamLab::cgroup(const std::string& id) { return absl::StrCat("/", prefix_, "-", id); }

int StreamLab::ProcessCount(const std::string& id) {
  std::string procs = ReadAll(CgroupDir("pids", cgroup(id)) + "/cgroup.procs");
  return static_cast<int>(std::count(procs.begin(), procs.end(), '\n'));
}

absl::StatusOr<std::string> StreamLab::StartContainer(std::vector<std::string> args,
                                                      const runtime::CreateOptions& create,
                                                      bool terminal,
                                                      const std::string& netns_path) {
  std::string id = absl::StrCat("c", next_++);
  std::string bundle = absl::StrCat(dir_, "/", id);
  std::filesystem::create_directories(bundle);
  runtime::Spec spec;
  spec.process.args = std::move(args);
  spec.process.env = {"PATH=/bin", "HOME=/root", "TERM=xterm"};
  spec.process.terminal = terminal;
  runtime::SetCapabilities(runtime::DefaultCapabilities(), &spec.process);
  spec.process.no_new_privileges = true;
  spec.root_path = rootfs_;
  spec.hostname = id;
  spec.mounts = runtime::DefaultMounts();
  spec.linux_spec.namespaces = {
      {"pid", ""}, {"mount", ""}, {"ipc", ""}, {"uts", ""}, {"network", netns_path}};
  spec.linux_spec.cgroups_path = cgroup(id);
  spec.linux_spec.masked_paths = runtime::DefaultMaskedPaths();
  spec.linux_spec.readonly_paths = runtime::DefaultReadonlyPaths();
  spec.linux_spec.seccomp = runtime::RuntimeDefaultSeccomp(runtime::DefaultCapabilities());
  {
    std::lock_guard<std::mutex> lock(mu_);
    bundles_[id] = bundle;
  }
  absl::StatusOr<runtime::CreatedContainer> created =
      launcher_.Create(id, bundle, spec, bundle + "/container.log", create);
  if (!created.ok()) return created.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    pids_.push_back(created->monitor_pid);
    pids_.push_back(created->init_pid);
  }
  if (absl::Status s = launcher_.Start(bundle); !s.ok()) return s;
  return id;
}

absl::StatusOr<std::string> StreamLab::CreatePod() {
  std::string pod = absl::StrCat("pod", next_++);
  std::string name = absl::StrCat(prefix_, "-", pod);
  if (Run(absl::StrCat("ip netns add ", name)) != 0) {
    return absl::InternalError(absl::StrCat("ip netns add ", name, " failed"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    netns_[pod] = name;
  }
  if (Run(absl::StrCat("ip netns exec ", name, " ip link set lo up")) != 0) {
    return absl::InternalError(absl::StrCat("bring lo up in ", name));
  }
  return pod;
}

std::string StreamLab::netns_path(const std::string& pod) {
  std::lock_guard<std::mutex> lock(mu_);
  return absl::StrCat("/run/netns/", netns_[pod]);
}

absl::StatusOr<std::string> StreamLab::StartHttpdPod(int port, const std::string& content) {
  absl::StatusOr<std::string> pod = CreatePod();
  if (!pod.ok()) return pod.status();
  std::string www = absl::StrCat("/www-", *pod);
  std::filesystem::create_directories(rootfs_ + www);
  std::ofstream(rootfs_ + www + "/index.html") << content;
  absl::StatusOr<std::string> httpd = StartContainer(
      {"httpd", "-f", "-p", absl::StrCat(port), "-h", www}, {}, false, netns_path(*pod));
  if (!httpd.ok()) return httpd.status();
  // Until it listens.
  for (int i = 0; i < 500; ++i) {
    if (runtime::DialInNetns(netns_path(*pod), port).ok()) return pod;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError("httpd in the pod does not listen");
}

std::vector<int> StreamLab::pids() {
  std::lock_guard<std::mutex> lock(mu_);
  return pids_;
}

RemoteCommandResult RunSpdy(const std::string& url, const std::string& protocol, bool in, bool out,
                            bool err, bool tty, const std::string& input, bool close_stdin,
                            std::optional<std::pair<int, int>> resize) {
  RemoteCommandResult result;
  absl::StatusOr<std::unique_ptr<SpdyClient>> connected = SpdyClient::Connect(url, {protocol});
  if (!connected.ok()) {
    result.failure = std::string(connected.status().message());
    return result;
  }
  SpdyClient& c = **connected;
  if (!c.upgraded()) {
    result.failure = absl::StrCat("HTTP ", c.response().code, ": ", c.response().body);
    return result;
  }
  result.protocol = c.response().headers.count("x-stream-protocol-version")
                        ? c.response().headers.at("x-stream-protocol-version")
                        : "";
  uint32_t error = c.OpenStream({{"streamtype", "error"}});
  uint32_t stdin_id = in ? c.OpenStream({{"streamtype", "stdin"}}) : 0;
  uint32_t stdout_id = out ? c.OpenStream({{"streamtype", "stdout"}}) : 0;
  uint32_t stderr_id = err ? c.OpenStream({{"streamtype", "stderr"}}) : 0;
  uint32_t resize_id = tty && protocol != "v2.channel.k8s.io" && protocol != "channel.k8s.io"
                           ? c.OpenStream({{"streamtype", "resize"}})
                           : 0;
  if (resize_id != 0 && resize) {
    (void)c.Send(resize_id,
                 absl::StrCat(R"({"Width":)", resize->second, R"(,"Height":)", resize->first, "}"));
  }
  if (in) {
    if (!input.empty()) (void)c.Send(stdin_id, input);
    if (close_stdin) (void)c.Send(stdin_id, "", /*fin=*/true);
  }
  absl::Status pumped = c.WaitFinished(error, absl::Seconds(60));
  if (!pumped.ok()) result.failure = std::string(pumped.message());
  // Output sent before the status is all there by now; a FIN on them may follow.
  (void)c.Pump(
      [&] {
        return (stdout_id == 0 || c.finished(stdout_id)) &&
               (stderr_id == 0 || c.finished(stderr_id));
      },
      absl::Seconds(2));
  result.out = out ? c.data(stdout_id) : "";
  result.err = err ? c.data(stderr_id) : "";
  result.error = c.data(error);
  (void)c.Pump([&] { return c.goaway(); }, absl::Seconds(2));
  result.goaway = c.goaway();
  return result;
}

RemoteCommandResult RunWebSocket(const std::string& url, const std::string& protocol,
                                 const std::string& input) {
  RemoteCommandResult result;
  absl::StatusOr<std::unique_ptr<WebSocketClient>> connected =
      WebSocketClient::Connect(url, {protocol});
  if (!connected.ok()) {
    result.failure = std::string(connected.status().message());
    return result;
  }
  WebSocketClient& ws = **connected;
  if (!ws.upgraded()) {
    result.failure = absl::StrCat("HTTP ", ws.response().code, ": ", ws.response().body);
    return result;
  }
  result.protocol = ws.protocol();
  if (!input.empty()) (void)ws.SendChannel(0, input);
  if (protocol == "v5.channel.k8s.io") (void)ws.SendChannel(255, std::string(1, '\0'));
  absl::Status pumped = ws.Pump([&] { return ws.closed(); }, absl::Seconds(60));
  if (!pumped.ok()) result.failure = std::string(pumped.message());
  result.out = ws.channel(1);
  result.err = ws.channel(2);
  result.error = ws.channel(3);
  return result;
}

long SelfRssKib() {
  std::string status = ReadAll("/proc/self/status");
  size_t at = status.find("VmRSS:");
  if (at == std::string::npos) return -1;
  return std::strtol(status.c_str() + at + 6, nullptr, 10);
}

}  // namespace crib::testing
