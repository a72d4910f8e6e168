// Prints the streaming server's figures (not a test): time to first byte of `exec echo hi`
// over SPDY and over WebSocket (p50, p99; from PrepareExec, as the RPC would, to the first
// stdout byte at the client), and port-forward throughput for a 100 MB transfer from a
// server in a pod's network namespace to the client. Usage:
//   stream_bench [runs=100] [megabytes=100]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/unique_fd.h"
#include "support/percentile.h"
#include "support/stream_client.h"
#include "support/stream_lab.h"

namespace {

using crib::UniqueFd;
using crib::testing::Percentile;
using crib::testing::SpdyClient;
using crib::testing::StreamLab;
using crib::testing::WebSocketClient;

// Milliseconds from PrepareExec to the first byte of stdout; negative on failure.
double SpdyFirstByte(StreamLab& lab, const std::string& id) {
  absl::Time t0 = absl::Now();
  absl::StatusOr<std::string> url =
      lab.server().PrepareExec({id, {"echo", "hi"}, false, false, true, false});
  if (!url.ok()) return -1;
  absl::StatusOr<std::unique_ptr<SpdyClient>> client =
      SpdyClient::Connect(*url, {"v4.channel.k8s.io"});
  if (!client.ok() || !(*client)->upgraded()) return -1;
  SpdyClient& c = **client;
  uint32_t error = c.OpenStream({{"streamtype", "error"}});
  uint32_t out = c.OpenStream({{"streamtype", "stdout"}});
  if (!c.Pump([&] { return !c.data(out).empty(); }).ok()) return -1;
  double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
  if (!c.WaitFinished(error).ok() || c.data(out) != "hi\n") return -1;
  return ms;
}

double WebSocketFirstByte(StreamLab& lab, const std::string& id) {
  absl::Time t0 = absl::Now();
  absl::StatusOr<std::string> url =
      lab.server().PrepareExec({id, {"echo", "hi"}, false, false, true, false});
  if (!url.ok()) return -1;
  absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
      WebSocketClient::Connect(*url, {"v5.channel.k8s.io"});
  if (!client.ok() || !(*client)->upgraded()) return -1;
  WebSocketClient& ws = **client;
  // The first (empty) message on stdout only says the streams are up.
  if (!ws.Pump([&] { return !ws.channel(1).empty(); }).ok()) return -1;
  double ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
  if (!ws.Pump([&] { return ws.closed(); }).ok() || ws.channel(1) != "hi\n") return -1;
  return ms;
}

// A TCP server in the pod's network namespace: every connection gets `bytes` and a close.
class Source {
 public:
  Source(const std::string& netns, size_t bytes) : bytes_(bytes) {
    std::thread([&] {
      UniqueFd ns(::open(netns.c_str(), O_RDONLY | O_CLOEXEC));
      if (::setns(ns.get(), CLONE_NEWNET) != 0) return;
      listener_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      struct sockaddr_in addr = {};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof(addr);
      if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
          ::listen(listener_.get(), 8) != 0 ||
          ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        return;
      }
      port_ = ntohs(addr.sin_port);
    }).join();
    thread_ = std::thread([this] { Serve(); });
  }
  ~Source() {
    stop_ = true;
    ::shutdown(listener_.get(), SHUT_RDWR);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  void Serve() {
    std::string chunk(256 * 1024, 'z');
    while (!stop_) {
      UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn) return;
      size_t left = bytes_;
      while (left > 0) {
        ssize_t n = ::send(conn.get(), chunk.data(), std::min(left, chunk.size()), MSG_NOSIGNAL);
        if (n <= 0) break;
        left -= static_cast<size_t>(n);
      }
    }
  }

  size_t bytes_;
  UniqueFd listener_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// MB/s of one transfer over SPDY; negative on failure.
double SpdyThroughput(StreamLab& lab, const std::string& pod, int port, size_t bytes,
                      bool flow_control) {
  absl::StatusOr<std::string> url = lab.server().PreparePortForward({pod, {port}});
  if (!url.ok()) return -1;
  absl::StatusOr<std::unique_ptr<SpdyClient>> client =
      SpdyClient::Connect(*url, {"portforward.k8s.io"}, flow_control, 1 << 20);
  if (!client.ok() || !(*client)->upgraded()) return -1;
  SpdyClient& c = **client;
  absl::Time t0 = absl::Now();
  std::string p = absl::StrCat(port);
  c.OpenStream({{"streamtype", "error"}, {"port", p}, {"requestid", "0"}});
  uint32_t data = c.OpenStream({{"streamtype", "data"}, {"port", p}, {"requestid", "0"}});
  if (!c.Pump(
            [&] {
              c.data(data).clear();
              return c.finished(data);
            },
            absl::Seconds(120))
           .ok()) {
    return -1;
  }
  double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  if (c.received() != bytes) return -1;
  return bytes / 1e6 / seconds;
}

double WebSocketThroughput(StreamLab& lab, const std::string& pod, int port, size_t bytes) {
  absl::StatusOr<std::string> url = lab.server().PreparePortForward({pod, {port}});
  if (!url.ok()) return -1;
  absl::Time t0 = absl::Now();
  absl::StatusOr<std::unique_ptr<WebSocketClient>> client =
      WebSocketClient::Connect(*url, {"v4.channel.k8s.io"});
  if (!client.ok() || !(*client)->upgraded()) return -1;
  WebSocketClient& ws = **client;
  size_t received = 0;
  if (!ws.Pump(
             [&] {
               received += ws.channel(0).size();
               ws.channel(0).clear();
               return ws.closed();
             },
             absl::Seconds(120))
           .ok()) {
    return -1;
  }
  double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  if (received != bytes + 2) return -1;  // the channel starts with the port
  return bytes / 1e6 / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 100;
  size_t megabytes = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 100;
  StreamLab lab(CRIB_MONITOR_PATH);
  crib::stream::ServerOptions options;
  if (absl::Status s = lab.StartServer(options); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::string> id = lab.StartContainer({"sleep", "100000"});
  if (!id.ok()) {
    std::fprintf(stderr, "%s\n", id.status().ToString().c_str());
    return 1;
  }
  std::vector<double> spdy, ws;
  for (int i = 0; i < runs; ++i) {
    double a = SpdyFirstByte(lab, *id);
    double b = WebSocketFirstByte(lab, *id);
    if (a < 0 || b < 0) {
      std::fprintf(stderr, "run %d failed\n", i);
      return 1;
    }
    spdy.push_back(a);
    ws.push_back(b);
  }
  std::printf("exec echo hi, time to first byte over %d runs (PrepareExec to first stdout byte):\n",
              runs);
  std::printf("  SPDY/3.1   p50 %.2f ms, p99 %.2f ms\n", Percentile(spdy, 0.5),
              Percentile(spdy, 0.99));
  std::printf("  WebSocket  p50 %.2f ms, p99 %.2f ms\n", Percentile(ws, 0.5), Percentile(ws, 0.99));

  absl::StatusOr<std::string> pod = lab.CreatePod();
  if (!pod.ok()) {
    std::fprintf(stderr, "%s\n", pod.status().ToString().c_str());
    return 1;
  }
  size_t bytes = megabytes * 1000 * 1000;
  Source source(lab.netns_path(*pod), bytes);
  if (source.port() == 0) {
    std::fprintf(stderr, "no listener in the pod\n");
    return 1;
  }
  double spdy_plain = SpdyThroughput(lab, *pod, source.port(), bytes, false);
  double spdy_windows = SpdyThroughput(lab, *pod, source.port(), bytes, true);
  double websocket = WebSocketThroughput(lab, *pod, source.port(), bytes);
  std::printf("port-forward, %zu MB from the pod to the client:\n", megabytes);
  std::printf("  SPDY/3.1 (no flow control, as kubectl)        %.0f MB/s\n", spdy_plain);
  std::printf("  SPDY/3.1 (1 MiB windows, WINDOW_UPDATE)       %.0f MB/s\n", spdy_windows);
  std::printf("  WebSocket v4.channel.k8s.io                  %.0f MB/s\n", websocket);
  return spdy_plain > 0 && spdy_windows > 0 && websocket > 0 ? 0 : 1;
}
