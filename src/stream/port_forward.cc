// Port forwarding sessions: each forwarded connection is a TCP socket dialed by the backend in
// the pod's network namespace, paired with the client's data stream (bytes both ways, with
// half-close) and its error stream (a message when dialing or forwarding fails).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "stream/session.h"

namespace crib::stream {
namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
constexpr size_t kReadChunk = 32 * 1024;
// Forwarded connections one client connection may hold at once.
constexpr size_t kMaxPairs = 128;

class PortForwardSession : public Session {
 public:
  PortForwardSession(const PortForwardParams& params, StreamBackend* backend, Mux* mux,
                     const SessionLimits& limits)
      : params_(params), backend_(backend), mux_(mux), limits_(limits) {}

  bool OnStreamOpened(uint32_t id, const StreamInfo& info) override {
    if (params_.websocket) return OpenChannel(id);
    if (info.type != "data" && info.type != "error") return false;
    int port = 0;
    if (!absl::SimpleAtoi(info.port, &port) || port < 1 || port > 65535) return false;
    // Clients before request ids: the error stream comes first, its data stream two ids on.
    std::string request_id = info.request_id;
    if (request_id.empty()) request_id = absl::StrCat(info.type == "error" ? id : id - 2);
    auto it = pairs_.find(request_id);
    if (it == pairs_.end()) {
      if (pairs_.size() >= kMaxPairs) return false;
      it = pairs_.emplace(request_id, Pair()).first;
      it->second.port = port;
      it->second.deadline = absl::Now() + limits_.stream_creation_timeout;
    }
    Pair& pair = it->second;
    uint32_t& slot = info.type == "data" ? pair.data : pair.error;
    if (slot != kNone) return false;  // that stream of the pair is there already
    slot = id;
    streams_[id] = request_id;
    if (pair.data != kNone && pair.error != kNone) Connect(request_id, pair);
    Sweep();
    return true;
  }

  void OnData(uint32_t id, absl::string_view data) override {
    Pair* pair = PairOf(id);
    if (pair == nullptr || id != pair->data || pair->done || pair->client_done) {
      mux_->Consumed(id, data.size());
      return;
    }
    pair->to_socket.append(data.data(), data.size());
    if (pair->socket) Flush(*pair);
    Sweep();
  }

  void OnStreamEnd(uint32_t id, bool reset) override {
    Pair* pair = PairOf(id);
    if (pair == nullptr) return;
    if (reset) {
      Close(*pair);
    } else if (id == pair->data) {
      pair->client_done = true;
      if (pair->socket) Flush(*pair);
    }
    Sweep();
  }

  void AddPollFds(std::vector<struct pollfd>* fds) override {
    slots_.clear();
    for (auto& [request_id, pair] : pairs_) {
      if (!pair.socket || pair.done) continue;
      short events = 0;
      if (!pair.socket_eof && mux_->SendRoom(pair.data) > 0) events |= POLLIN;
      if (pair.to_socket_off < pair.to_socket.size()) events |= POLLOUT;
      if (events == 0) continue;
      fds->push_back({pair.socket.get(), events, 0});
      slots_.push_back(request_id);
    }
  }

  void OnPoll(const struct pollfd* fds, size_t count) override {
    for (size_t i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      auto it = pairs_.find(slots_[i]);
      if (it == pairs_.end() || !it->second.socket) continue;
      Pair& pair = it->second;
      if (fds[i].revents & POLLOUT) Flush(pair);
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && pair.socket && !pair.socket_eof) {
        ReadSocket(pair);
      }
    }
    Sweep();
  }

  absl::Time NextDeadline() const override {
    absl::Time next = absl::InfiniteFuture();
    for (const auto& [request_id, pair] : pairs_) {
      if (!pair.socket && !pair.done) next = std::min(next, pair.deadline);
    }
    return next;
  }

  void OnTimer(absl::Time now) override {
    for (auto& [request_id, pair] : pairs_) {
      if (!pair.socket && !pair.done && now >= pair.deadline) {
        Fail(pair, absl::StrCat("timed out waiting for the data and error streams of request ",
                                request_id));
      }
    }
    Sweep();
  }

  bool WantsInput() const override {
    for (const auto& [request_id, pair] : pairs_) {
      if (pair.to_socket.size() - pair.to_socket_off >= limits_.buffer_bytes) return false;
    }
    return true;
  }

  bool Done() const override {
    if (aborted_) return true;
    if (params_.websocket) return opened_ && pairs_.empty();
    return mux_->peer_closed() && pairs_.empty();
  }

  void Abort() override {
    pairs_.clear();
    streams_.clear();
    aborted_ = true;
  }

 private:
  struct Pair {
    int port = 0;
    uint32_t data = kNone;
    uint32_t error = kNone;
    absl::Time deadline;
    UniqueFd socket;
    std::string to_socket;
    size_t to_socket_off = 0;
    bool client_done = false;  // the client's data stream ended
    bool write_shut = false;   // and the socket got our FIN
    bool socket_eof = false;   // the pod's side ended
    bool done = false;
  };

  // WebSocket: channel 2i is the data and 2i+1 the error channel of port i; all are opened at
  // the start, and the connections are made right away.
  bool OpenChannel(uint32_t id) {
    size_t index = id / 2;
    if (index >= params_.ports.size()) return false;
    std::string key = absl::StrCat(index);
    Pair& pair = pairs_[key];
    pair.port = params_.ports[index];
    (id % 2 == 0 ? pair.data : pair.error) = id;
    streams_[id] = key;
    if (id + 1 < params_.ports.size() * 2) return true;
    opened_ = true;
    for (size_t i = 0; i < params_.ports.size(); ++i) {
      // Each channel starts with its port, little-endian.
      char port[2] = {static_cast<char>(params_.ports[i] & 0xff),
                      static_cast<char>(params_.ports[i] >> 8)};
      mux_->Send(static_cast<uint32_t>(2 * i), absl::string_view(port, 2));
      mux_->Send(static_cast<uint32_t>(2 * i + 1), absl::string_view(port, 2));
    }
    for (auto& [k, p] : pairs_) Connect(k, p);
    return true;
  }

  Pair* PairOf(uint32_t id) {
    auto s = streams_.find(id);
    if (s == streams_.end()) return nullptr;
    auto p = pairs_.find(s->second);
    return p == pairs_.end() ? nullptr : &p->second;
  }

  void Connect(const std::string& request_id, Pair& pair) {
    bool allowed = params_.allowed_ports.empty();
    for (int port : params_.allowed_ports) allowed |= port == pair.port;
    if (!allowed) {
      Fail(pair, absl::StrCat("port ", pair.port, " is not one of the ports of this request"));
      return;
    }
    absl::StatusOr<UniqueFd> socket = backend_->DialPort(params_.pod_sandbox_id, pair.port);
    if (!socket.ok()) {
      Fail(pair, absl::StrCat("error forwarding port ", pair.port, " to pod ",
                              params_.pod_sandbox_id, ": ", socket.status().message()));
      return;
    }
    pair.socket = *std::move(socket);
    ::fcntl(pair.socket.get(), F_SETFL, ::fcntl(pair.socket.get(), F_GETFL) | O_NONBLOCK);
    spdlog::debug("stream: forwarding port {} of pod {} (request {})", pair.port,
                  params_.pod_sandbox_id, request_id);
    Flush(pair);
  }

  void Flush(Pair& pair) {
    while (pair.to_socket_off < pair.to_socket.size()) {
      ssize_t n = ::send(pair.socket.get(), pair.to_socket.data() + pair.to_socket_off,
                         pair.to_socket.size() - pair.to_socket_off, MSG_NOSIGNAL);
      if (n > 0) {
        pair.to_socket_off += n;
        mux_->Consumed(pair.data, n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      Fail(pair, absl::StrCat("error forwarding port ", pair.port, ": ", std::strerror(errno)));
      return;
    }
    pair.to_socket.clear();
    pair.to_socket_off = 0;
    if (pair.client_done && !pair.write_shut) {
      ::shutdown(pair.socket.get(), SHUT_WR);
      pair.write_shut = true;
    }
    if (pair.write_shut && pair.socket_eof) Close(pair);
  }

  void ReadSocket(Pair& pair) {
    size_t room = std::min(mux_->SendRoom(pair.data), kReadChunk);
    if (room == 0) return;
    char buf[kReadChunk];
    ssize_t n = ::recv(pair.socket.get(), buf, room, 0);
    if (n > 0) {
      mux_->Send(pair.data, absl::string_view(buf, n));
      return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) {
      Fail(pair, absl::StrCat("error forwarding port ", pair.port, ": ", std::strerror(errno)));
      return;
    }
    pair.socket_eof = true;
    if (params_.websocket) {
      Close(pair);  // v4 WebSocket channels cannot be half-closed
      return;
    }
    mux_->Finish(pair.data);
    // Nothing more can go wrong that the client needs to hear of, and client-go closes its
    // local connection only once the error stream has ended (as kubelet ends both here).
    if (pair.error != kNone) mux_->Finish(pair.error);
    if (pair.write_shut) Close(pair);
  }

  void Fail(Pair& pair, const std::string& message) {
    spdlog::warn("stream: port forward to pod {}: {}", params_.pod_sandbox_id, message);
    if (pair.error != kNone && !pair.socket_eof) mux_->Send(pair.error, message);
    Close(pair);
  }

  void Close(Pair& pair) {
    if (pair.done) return;
    pair.done = true;
    pair.socket.Reset();
    if (pair.to_socket_off < pair.to_socket.size()) {
      mux_->Consumed(pair.data, pair.to_socket.size() - pair.to_socket_off);
    }
    pair.to_socket.clear();
    pair.to_socket_off = 0;
    for (uint32_t id : {pair.data, pair.error}) {
      if (id != kNone) mux_->Finish(id);
    }
  }

  // Forgets the pairs that are done.
  void Sweep() {
    for (auto it = pairs_.begin(); it != pairs_.end();) {
      if (!it->second.done) {
        ++it;
        continue;
      }
      for (uint32_t id : {it->second.data, it->second.error}) streams_.erase(id);
      it = pairs_.erase(it);
    }
  }

  PortForwardParams params_;
  StreamBackend* backend_;
  Mux* mux_;
  SessionLimits limits_;
  std::map<std::string, Pair> pairs_;
  std::map<uint32_t, std::string> streams_;  // stream id -> its pair
  std::vector<std::string> slots_;
  bool opened_ = false;
  bool aborted_ = false;
};

}  // namespace

std::unique_ptr<Session> NewPortForwardSession(const PortForwardParams& params,
                                               StreamBackend* backend, Mux* mux,
                                               const SessionLimits& limits) {
  return std::make_unique<PortForwardSession>(params, backend, mux, limits);
}

}  // namespace crib::stream
