#include "server/metrics_endpoint.h"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/send_all.h"
#include "config/config.h"

namespace crib::server {
namespace {

constexpr size_t kMaxRequestBytes = 16 << 10;
constexpr int kReadTimeoutSeconds = 2;
constexpr int kWriteTimeoutSeconds = 5;

void Respond(int fd, absl::string_view status, absl::string_view content_type,
             absl::string_view body, bool head, absl::string_view extra_header = "") {
  std::string out = absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                                 "\r\nContent-Length: ", body.size(), "\r\n", extra_header,
                                 "Connection: close\r\n\r\n");
  if (!head) out.append(body.data(), body.size());
  SendAll(fd, out.data(), out.size());
}

// Gauges of the objects crib holds, counted when a scrape asks.
std::vector<metrics::GaugeFamily> ObjectStates(Dependencies& deps) {
  std::vector<metrics::GaugeFamily> out;
  absl::StatusOr<std::vector<pod::PodSandbox>> pods = deps.pods.List({});
  if (pods.ok()) {
    double ready = 0, not_ready = 0;
    for (const pod::PodSandbox& p : *pods) (p.state == pod::PodState::kReady ? ready : not_ready)++;
    out.push_back({"cribd_pod_sandboxes",
                   "Pod sandboxes crib holds, by state.",
                   {"state"},
                   {{{"ready"}, ready}, {{"notready"}, not_ready}}});
  }
  absl::StatusOr<std::vector<container::Container>> containers = deps.containers.List({});
  if (containers.ok()) {
    double count[4] = {0, 0, 0, 0};
    for (const container::Container& c : *containers) {
      const int state = static_cast<int>(c.state);
      if (state >= 0 && state < 4) ++count[state];
    }
    out.push_back({"cribd_containers",
                   "Containers crib holds, by state.",
                   {"state"},
                   {{{"created"}, count[0]},
                    {{"running"}, count[1]},
                    {{"exited"}, count[2]},
                    {{"unknown"}, count[3]}}});
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(const std::string& address,
                                                                        Dependencies deps) {
  absl::StatusOr<HostPort> where = ParseHostPort(address);
  if (!where.ok()) return Annotate(where.status(), "metrics endpoint");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = absl::StrCat(where->port);
  const int rc = ::getaddrinfo(where->host.empty() ? nullptr : where->host.c_str(), port.c_str(),
                               &hints, &found);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics endpoint: resolve ", address, ": ", ::gai_strerror(rc)));
  }
  UniqueFd listener;
  int err = 0;
  for (addrinfo* a = found; a != nullptr && !listener; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd) {
      err = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd.get(), 16) != 0) {
      err = errno;
      continue;
    }
    listener = std::move(fd);
  }
  ::freeaddrinfo(found);
  if (!listener) return ErrnoStatus(err, absl::StrCat("metrics endpoint: listen on ", address));
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &length);
  const int bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC));
  if (!wake) return ErrnoStatus(errno, "metrics endpoint: eventfd");
  std::unique_ptr<MetricsEndpoint> endpoint(
      new MetricsEndpoint(std::move(listener), std::move(wake), bound_port, deps));
  spdlog::info("serving Prometheus metrics on {} (port {})", address, bound_port);
  return endpoint;
}

MetricsEndpoint::MetricsEndpoint(UniqueFd listener, UniqueFd wake, int port, Dependencies deps)
    : listener_(std::move(listener)), wake_(std::move(wake)), port_(port), deps_(deps) {
  collector_ = metrics::Registry::Global().AddCollector([this] { return ObjectStates(deps_); });
  thread_ = std::thread([this] { Serve(); });
}

MetricsEndpoint::~MetricsEndpoint() {
  const uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof(one)) != sizeof(one)) {
    spdlog::warn("{}", ErrnoStatus(errno, "metrics endpoint: wake its thread").message());
  }
  thread_.join();
  metrics::Registry::Global().RemoveCollector(collector_);
}

void MetricsEndpoint::Serve() {
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("{}", ErrnoStatus(errno, "metrics endpoint: poll").message());
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) continue;
    Answer(client.get());
  }
}

void MetricsEndpoint::Answer(int fd) {
  const timeval read_timeout{kReadTimeoutSeconds, 0};
  const timeval write_timeout{kWriteTimeoutSeconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &read_timeout, sizeof(read_timeout));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &write_timeout, sizeof(write_timeout));
  std::string request;
  char buf[4096];
  while (request.find("\r\n\r\n") == std::string::npos) {
    if (request.size() > kMaxRequestBytes) {
      Respond(fd, "431 Request Header Fields Too Large", "text/plain", "request too large\n",
              false);
      return;
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // gone, or too slow
    request.append(buf, static_cast<size_t>(n));
  }
  const absl::string_view line(request.data(), request.find("\r\n"));
  std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    Respond(fd, "400 Bad Request", "text/plain", "bad request line\n", false);
    return;
  }
  const bool head = parts[0] == "HEAD";
  if (parts[0] != "GET" && !head) {
    Respond(fd, "405 Method Not Allowed", "text/plain", "only GET\n", false,
            "Allow: GET, HEAD\r\n");
    return;
  }
  const absl::string_view path = parts[1].substr(0, parts[1].find('?'));
  if (path != "/metrics") {
    Respond(fd, "404 Not Found", "text/plain", "only /metrics is here\n", head);
    return;
  }
  Respond(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
          metrics::Registry::Global().RenderText(), head);
}

}  // namespace crib::server
