#include "stream/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "stream/http.h"
#include "stream/k8s_protocol.h"
#include "stream/mux.h"
#include "stream/session.h"
#include "stream/transport.h"

namespace crib::stream {
namespace {

constexpr size_t kMaxRequestHead = 16 * 1024;
constexpr absl::Duration kHandshakeTimeout = absl::Seconds(10);
// After the last word, how long the peer gets to read it and hang up.
constexpr absl::Duration kLinger = absl::Seconds(2);
constexpr size_t kMaxWebSocketMessage = 4 << 20;
constexpr uint32_t kSpdyRecvWindow = 512 * 1024;

enum class Kind { kExec, kAttach, kPortForward };

std::string HostForUrl(const std::string& address) {
  return absl::StrContains(address, ':') ? absl::StrCat("[", address, "]") : address;
}

// A status from the backend as an HTTP answer before the upgrade.
int HttpCodeFor(const absl::Status& status) {
  switch (ClientCode(status)) {
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    default:
      return 500;
  }
}

absl::Status ValidateStreams(bool tty, bool in, bool out, bool err) {
  if (tty && err) {
    return absl::InvalidArgumentError(
        "tty and stderr cannot both be true (a terminal has one output stream)");
  }
  if (!in && !out && !err) {
    return absl::InvalidArgumentError("one of stdin, stdout and stderr must be set");
  }
  return absl::OkStatus();
}

}  // namespace

ServerOptions ServerOptionsFromConfig(const StreamConfig& config) {
  ServerOptions options;
  options.address = config.address;
  options.port = config.port;
  options.tls = config.tls;
  options.tls_cert_file = config.tls_cert_file;
  options.tls_key_file = config.tls_key_file;
  options.idle_timeout = config.idle_timeout;
  options.stream_creation_timeout = config.stream_creation_timeout;
  options.max_streams = config.max_streams;
  options.max_streams_per_container = config.max_streams_per_container;
  return options;
}

// What the connections share: options, backend, tokens, the limits' counters, the stop fd.
class Server::Core {
 public:
  Core(const ServerOptions& options, StreamBackend* backend)
      : options(options), backend(backend), tokens(options.token_ttl, options.max_tokens) {}

  // One slot of the per-target limit; false at the limit.
  bool AcquireTarget(const std::string& target) {
    std::lock_guard<std::mutex> lock(mu);
    int& n = per_target[target];
    if (n >= options.max_streams_per_container) {
      if (n == 0) per_target.erase(target);
      return false;
    }
    ++n;
    ++sessions;
    return true;
  }
  void ReleaseTarget(const std::string& target) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = per_target.find(target);
    if (it != per_target.end() && --it->second <= 0) per_target.erase(it);
    --sessions;
  }
  int SessionsFor(const std::string& target) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = per_target.find(target);
    return it == per_target.end() ? 0 : it->second;
  }

  void ServeConnection(UniqueFd fd);

  const ServerOptions options;
  StreamBackend* const backend;
  TokenCache tokens;
  std::unique_ptr<TlsContext> tls;
  UniqueFd listener;
  UniqueFd stop_fd;  // an eventfd, readable once stopping
  std::atomic<bool> stopping{false};

  mutable std::mutex mu;
  std::map<std::string, int> per_target;  // sessions per container or pod sandbox
  int sessions = 0;
  int connections = 0;
  // Connection threads; finished ones are joined by the accept loop.
  struct Worker {
    std::thread thread;
    bool done = false;
  };
  std::list<Worker> workers;
};

namespace {

// One client connection from the first byte to the close, on its own thread.
class Connection {
 public:
  Connection(Server::Core& core, std::unique_ptr<Transport> transport)
      : core_(core), transport_(std::move(transport)) {}

  void Run();

 private:
  // Reads the request head; nullopt when the connection is to be dropped.
  std::optional<HttpRequest> ReadHead();
  // Writes `data` before the upgrade (bounded by the handshake deadline).
  void WriteAll(absl::string_view data);
  void Respond(int code, absl::string_view body,
               const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    spdlog::debug("stream: {} {}", code, body);
    WriteAll(HttpResponse(code, body, headers));
  }
  // Sets up the mux and session for an upgraded connection, or answers with an error.
  bool Upgrade(const HttpRequest& request, Kind kind, PreparedRequest prepared);
  // The poll loop of an upgraded connection.
  void Loop();
  // Reads what the transport has; false when the client is gone.
  bool ReadInput();
  // Writes what the mux has; false on a broken connection.
  bool WriteOutput();
  void Linger();

  Server::Core& core_;
  std::unique_ptr<Transport> transport_;
  std::string input_;  // bytes read past the request head
  absl::Time deadline_ = absl::Now() + kHandshakeTimeout;
  std::unique_ptr<Mux> mux_;
  std::unique_ptr<Session> session_;
  absl::Time last_activity_;
};

void Connection::WriteAll(absl::string_view data) {
  while (!data.empty()) {
    IoResult r = transport_->Write(data.data(), data.size());
    if (r.status == Io::kOk) {
      data.remove_prefix(r.bytes);
      continue;
    }
    if (r.status != Io::kWouldBlock) return;
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline_ - absl::Now()));
    if (ms <= 0) return;
    struct pollfd p = {transport_->fd(), transport_->PollEvents(false, true), 0};
    ::poll(&p, 1, ms);
  }
}

std::optional<HttpRequest> Connection::ReadHead() {
  std::string head;
  while (true) {
    size_t end = HeadEnd(head);
    if (end != std::string::npos) {
      input_ = head.substr(end);
      absl::StatusOr<HttpRequest> request = ParseRequestHead(head.substr(0, end));
      if (!request.ok()) {
        Respond(400, request.status().message());
        return std::nullopt;
      }
      return *std::move(request);
    }
    if (head.size() > kMaxRequestHead) {
      Respond(431, "request head too large");
      return std::nullopt;
    }
    char buf[4096];
    IoResult r = transport_->Read(buf, sizeof(buf));
    if (r.status == Io::kOk) {
      head.append(buf, r.bytes);
      continue;
    }
    if (r.status != Io::kWouldBlock) return std::nullopt;
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline_ - absl::Now()));
    if (ms <= 0) return std::nullopt;  // a client that says nothing gets nothing
    struct pollfd p[2] = {{transport_->fd(), transport_->PollEvents(true, false), 0},
                          {core_.stop_fd.get(), POLLIN, 0}};
    if (::poll(p, 2, ms) > 0 && p[1].revents != 0) return std::nullopt;
  }
}

void Connection::Run() {
  std::optional<HttpRequest> request = ReadHead();
  if (!request) return;
  if (request->method != "GET" && request->method != "POST") {
    Respond(405, "only GET and POST are served");
    return;
  }
  std::vector<std::string> parts = absl::StrSplit(request->path, '/', absl::SkipEmpty());
  std::optional<Kind> kind;
  if (parts.size() == 2 && parts[0] == "exec") kind = Kind::kExec;
  if (parts.size() == 2 && parts[0] == "attach") kind = Kind::kAttach;
  if (parts.size() == 2 && parts[0] == "portforward") kind = Kind::kPortForward;
  if (!kind) {
    Respond(404, "404 page not found");
    return;
  }
  absl::StatusOr<PreparedRequest> prepared = core_.tokens.Consume(parts[1]);
  bool matches =
      prepared.ok() &&
      ((*kind == Kind::kExec && std::holds_alternative<ExecRequest>(*prepared)) ||
       (*kind == Kind::kAttach && std::holds_alternative<AttachRequest>(*prepared)) ||
       (*kind == Kind::kPortForward && std::holds_alternative<PortForwardRequest>(*prepared)));
  if (!matches) {
    // Unknown, used, expired or for another kind: all look the same.
    Respond(404, "404 page not found");
    return;
  }
  std::string target;
  absl::Status present;
  if (const auto* exec = std::get_if<ExecRequest>(&*prepared)) {
    target = exec->container_id;
    present = core_.backend->CheckContainer(target);
  } else if (const auto* attach = std::get_if<AttachRequest>(&*prepared)) {
    target = attach->container_id;
    present = core_.backend->CheckContainer(target);
  } else {
    const auto& pf = std::get<PortForwardRequest>(*prepared);
    target = absl::StrCat("pod/", pf.pod_sandbox_id);
    present = core_.backend->CheckPodSandbox(pf.pod_sandbox_id);
  }
  if (!present.ok()) {
    Respond(HttpCodeFor(present), present.message());
    return;
  }
  if (!core_.AcquireTarget(target)) {
    Respond(429, absl::StrCat("too many streams for ", target, " (",
                              core_.options.max_streams_per_container, ")"));
    return;
  }
  absl::Cleanup release = [&] { core_.ReleaseTarget(target); };
  if (!Upgrade(*request, *kind, *std::move(prepared))) return;
  Loop();
}

bool Connection::Upgrade(const HttpRequest& request, Kind kind, PreparedRequest prepared) {
  SessionLimits limits;
  limits.buffer_bytes = core_.options.buffer_bytes;
  limits.stream_creation_timeout = core_.options.stream_creation_timeout;
  const bool websocket =
      request.HasToken("Upgrade", "websocket") && request.HasToken("Connection", "upgrade");
  const bool spdy = !websocket && request.HasToken("Connection", "upgrade") &&
                    absl::StrContains(absl::AsciiStrToLower(request.Value("Upgrade")), "spdy/3.1");
  if (!websocket && !spdy) {
    Respond(400,
            "unable to upgrade: missing upgrade headers in request (want SPDY/3.1 or "
            "websocket)");
    return false;
  }
  std::vector<std::string> server_protocols;
  if (kind == Kind::kPortForward) {
    if (websocket) {
      server_protocols.assign(std::begin(kPortForwardWebSocketProtocols),
                              std::end(kPortForwardWebSocketProtocols));
    } else {
      server_protocols = {kPortForwardSpdyProtocol};
    }
  } else if (websocket) {
    server_protocols.assign(std::begin(kRemoteCommandWebSocketProtocols),
                            std::end(kRemoteCommandWebSocketProtocols));
  } else {
    server_protocols.assign(std::begin(kRemoteCommandSpdyProtocols),
                            std::end(kRemoteCommandSpdyProtocols));
  }
  std::string protocol;
  std::vector<std::pair<std::string, std::string>> headers;
  if (websocket) {
    std::string key = request.Value("Sec-WebSocket-Key");
    if (key.empty() || request.Value("Sec-WebSocket-Version") != "13") {
      Respond(400, "websocket: Sec-WebSocket-Key and Sec-WebSocket-Version 13 are required",
              {{"Sec-WebSocket-Version", "13"}});
      return false;
    }
    std::vector<std::string> offered = request.Values("Sec-WebSocket-Protocol");
    if (!offered.empty()) {
      protocol = Negotiate(offered, server_protocols);
      if (protocol.empty()) {
        Respond(403, absl::StrCat("unable to upgrade: requested protocol(s) are not supported: ",
                                  absl::StrJoin(offered, ", "), "; supports ",
                                  absl::StrJoin(server_protocols, ", ")));
        return false;
      }
    }
    headers = {{"Upgrade", "websocket"},
               {"Connection", "Upgrade"},
               {"Sec-WebSocket-Accept", ws::AcceptKey(key)}};
    if (!protocol.empty()) headers.emplace_back("Sec-WebSocket-Protocol", protocol);
  } else {
    std::vector<std::string> offered = request.Values("X-Stream-Protocol-Version");
    if (offered.empty()) {
      Respond(400, "unable to upgrade: X-Stream-Protocol-Version is required");
      return false;
    }
    protocol = Negotiate(offered, server_protocols);
    if (protocol.empty()) {
      std::vector<std::pair<std::string, std::string>> accepted;
      accepted.reserve(server_protocols.size());
      for (const std::string& p : server_protocols) {
        accepted.emplace_back("X-Accepted-Stream-Protocol-Versions", p);
      }
      Respond(403,
              absl::StrCat("unable to upgrade: unable to negotiate protocol: client supports ",
                           absl::StrJoin(offered, ", "), ", server accepts ",
                           absl::StrJoin(server_protocols, ", ")),
              accepted);
      return false;
    }
    headers = {{"Connection", "Upgrade"},
               {"Upgrade", "SPDY/3.1"},
               {"X-Stream-Protocol-Version", protocol}};
  }

  if (kind == Kind::kPortForward) {
    PortForwardRequest& pf = std::get<PortForwardRequest>(prepared);
    PortForwardParams params;
    params.pod_sandbox_id = pf.pod_sandbox_id;
    params.allowed_ports = pf.ports;
    params.websocket = websocket;
    if (websocket) {
      params.ports = pf.ports;
      if (params.ports.empty()) {
        for (const std::string& value : request.QueryValues("ports")) {
          for (absl::string_view p : absl::StrSplit(value, ',', absl::SkipEmpty())) {
            int port = 0;
            if (!absl::SimpleAtoi(p, &port) || port < 1 || port > 65535) {
              Respond(400, absl::StrCat("unable to parse \"", p, "\" as a port"));
              return false;
            }
            params.ports.push_back(port);
          }
        }
      }
      if (params.ports.empty()) {
        Respond(400, "query parameter \"ports\" is required");
        return false;
      }
      std::vector<StreamInfo> channels;
      for (size_t i = 0; i < params.ports.size(); ++i) {
        channels.push_back({"data", absl::StrCat(params.ports[i]), absl::StrCat(i)});
        channels.push_back({"error", absl::StrCat(params.ports[i]), absl::StrCat(i)});
      }
      mux_ = std::make_unique<WebSocketMux>(core_.options.buffer_bytes, kMaxWebSocketMessage,
                                            std::move(channels), IsBase64Protocol(protocol),
                                            /*close_signal=*/false);
    } else {
      mux_ = std::make_unique<SpdyMux>(core_.options.buffer_bytes, kSpdyRecvWindow);
    }
    session_ = NewPortForwardSession(params, core_.backend, mux_.get(), limits);
  } else {
    RemoteCommandParams params;
    params.exec = kind == Kind::kExec;
    if (params.exec) {
      params.exec_request = std::get<ExecRequest>(prepared);
    } else {
      params.attach_request = std::get<AttachRequest>(prepared);
    }
    params.websocket = websocket;
    params.version = RemoteCommandVersion(protocol);
    if (websocket) {
      std::vector<StreamInfo> channels = {{"stdin", "", ""},
                                          {"stdout", "", ""},
                                          {"stderr", "", ""},
                                          {"error", "", ""},
                                          {"resize", "", ""}};
      mux_ = std::make_unique<WebSocketMux>(core_.options.buffer_bytes, kMaxWebSocketMessage,
                                            std::move(channels), IsBase64Protocol(protocol),
                                            /*close_signal=*/params.version >= 5);
    } else {
      mux_ = std::make_unique<SpdyMux>(core_.options.buffer_bytes, kSpdyRecvWindow);
    }
    session_ = NewRemoteCommandSession(params, core_.backend, mux_.get(), limits);
  }
  spdlog::debug("stream: {} upgraded to {} ({})", request.path,
                websocket ? "websocket" : "SPDY/3.1",
                protocol.empty() ? "no subprotocol" : protocol);
  mux_->set_handler(session_.get());
  mux_->AppendRaw(HttpResponse(101, "", headers));
  mux_->Start();
  return true;
}

bool Connection::ReadInput() {
  // A bounded amount per round, so that output and the container side get their turn.
  for (int i = 0; i < 8 && session_->WantsInput(); ++i) {
    char buf[64 * 1024];
    size_t n = 0;
    if (!input_.empty()) {
      n = std::min(input_.size(), sizeof(buf));
      std::memcpy(buf, input_.data(), n);
      input_.erase(0, n);
    } else {
      IoResult r = transport_->Read(buf, sizeof(buf));
      if (r.status == Io::kWouldBlock) return true;
      if (r.status != Io::kOk) return false;
      n = r.bytes;
    }
    last_activity_ = absl::Now();
    absl::Status fed = mux_->OnInput(absl::string_view(buf, n));
    if (!fed.ok()) {
      spdlog::warn("stream: closing a connection: {}", fed.message());
      WriteOutput();
      return false;
    }
  }
  return true;
}

bool Connection::WriteOutput() {
  while (mux_->has_output()) {
    absl::string_view out = mux_->output();
    IoResult r = transport_->Write(out.data(), out.size());
    if (r.status == Io::kWouldBlock) return true;
    if (r.status != Io::kOk) return false;
    mux_->Consume(r.bytes);
    last_activity_ = absl::Now();
  }
  return true;
}

void Connection::Loop() {
  last_activity_ = absl::Now();
  std::vector<struct pollfd> fds;
  while (true) {
    if (!WriteOutput()) break;
    if (session_->Done()) {
      mux_->Close(ws::kCloseNormal, "");
      Linger();
      return;
    }
    if (mux_->client_gone()) break;
    bool want_read = session_->WantsInput();
    if (want_read && (!input_.empty() || transport_->HasBufferedInput())) {
      if (!ReadInput()) break;
      continue;
    }
    fds.clear();
    fds.push_back({core_.stop_fd.get(), POLLIN, 0});
    fds.push_back({transport_->fd(), transport_->PollEvents(want_read, mux_->has_output()), 0});
    session_->AddPollFds(&fds);
    absl::Time now = absl::Now();
    absl::Time deadline =
        std::min(session_->NextDeadline(), last_activity_ + core_.options.idle_timeout);
    int ms = deadline == absl::InfiniteFuture()
                 ? -1
                 : static_cast<int>(std::clamp<int64_t>(
                       absl::ToInt64Milliseconds(deadline - now) + 1, 0, 60 * 60 * 1000));
    int n = ::poll(fds.data(), fds.size(), ms);
    if (n < 0 && errno != EINTR) break;
    if (n > 0 && fds[0].revents != 0) break;  // the server stops
    now = absl::Now();
    if (n > 0 && fds[1].revents != 0) {
      if ((fds[1].revents & POLLOUT) && !WriteOutput()) break;
      if (want_read && !ReadInput()) break;
      // Reported even when not asked for: the client is gone, whatever input is pending.
      if (!want_read && (fds[1].revents & (POLLHUP | POLLERR))) break;
    }
    if (n > 0) session_->OnPoll(fds.data() + 2, fds.size() - 2);
    if (now >= session_->NextDeadline()) session_->OnTimer(now);
    if (now - last_activity_ >= core_.options.idle_timeout) {
      spdlog::info("stream: closing a connection idle for {}",
                   absl::FormatDuration(core_.options.idle_timeout));
      break;
    }
  }
  // The client is gone, broke the protocol, stayed idle, or the server stops.
  session_->Abort();
  if (mux_->has_output()) {
    mux_->Close(ws::kCloseGoingAway, "");
    WriteOutput();
  }
}

void Connection::Linger() {
  // Everything is said (status, FINs, GOAWAY or a close frame). The connection closes when the
  // client says goodbye too (GOAWAY, which client-go sends; a close frame; or hanging up), or
  // after kLinger. Closing first would race clients that still parse the last frames when
  // their socket reports the close (spdy-transport drops them then).
  absl::Time deadline = absl::Now() + kLinger;
  while (absl::Now() < deadline) {
    if (!WriteOutput()) return;
    if (!mux_->has_output() && mux_->peer_closed()) break;
    struct pollfd p[2] = {{transport_->fd(), transport_->PollEvents(true, mux_->has_output()), 0},
                          {core_.stop_fd.get(), POLLIN, 0}};
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now())) + 1;
    if (::poll(p, 2, ms) <= 0 || p[1].revents != 0) break;
    if (p[0].revents == 0) continue;
    char buf[16384];
    IoResult r = transport_->Read(buf, sizeof(buf));
    if (r.status == Io::kEof || r.status == Io::kError) return;
    if (r.status == Io::kOk && !mux_->OnInput(absl::string_view(buf, r.bytes)).ok()) break;
  }
  WriteOutput();
  transport_->ShutdownWrite();
}

}  // namespace

void Server::Core::ServeConnection(UniqueFd fd) {
  // A write to a pipe whose reader is gone must be EPIPE for this thread, not the end of the
  // process (SIGPIPE is thread-directed; blocked here, it is discarded with the thread).
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
  std::unique_ptr<Transport> transport;
  if (tls != nullptr) {
    absl::StatusOr<std::unique_ptr<Transport>> accepted =
        tls->Accept(std::move(fd), absl::Now() + kHandshakeTimeout);
    if (!accepted.ok()) {
      spdlog::debug("stream: {}", accepted.status().message());
      return;
    }
    transport = *std::move(accepted);
  } else {
    transport = PlainTransport(std::move(fd));
  }
  Connection(*this, std::move(transport)).Run();
}

Server::Server(std::unique_ptr<Core> core) : core_(std::move(core)) {}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                      StreamBackend* backend) {
  auto annotate = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("stream server on ", options.address, ":", options.port));
  };
  auto core = std::make_unique<Core>(options, backend);
  struct sockaddr_storage addr = {};
  socklen_t len = 0;
  int family = AF_INET;
  if (::inet_pton(AF_INET, options.address.c_str(),
                  &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr) == 1) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(options.port));
    len = sizeof(*in);
  } else if (::inet_pton(AF_INET6, options.address.c_str(),
                         &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr) == 1) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(options.port));
    len = sizeof(*in6);
    family = AF_INET6;
  } else {
    return annotate(absl::InvalidArgumentError("the address is not an IP address"));
  }
  core->listener.Reset(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!core->listener) return annotate(ErrnoStatus(errno, "socket"));
  int one = 1;
  ::setsockopt(core->listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(core->listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    return annotate(ErrnoStatus(errno, "bind"));
  }
  if (::listen(core->listener.get(), 128) != 0) return annotate(ErrnoStatus(errno, "listen"));
  if (::getsockname(core->listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return annotate(ErrnoStatus(errno, "getsockname"));
  }
  int port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&addr)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  if (options.tls) {
    ASSIGN_OR_RETURN(core->tls, TlsContext::Create(options.tls_cert_file, options.tls_key_file,
                                                   {options.address, "localhost"}));
  }
  core->stop_fd.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!core->stop_fd) return annotate(ErrnoStatus(errno, "eventfd"));
  std::unique_ptr<Server> server(new Server(std::move(core)));
  server->port_ = port;
  server->base_url_ =
      absl::StrCat(options.tls ? "https" : "http", "://", HostForUrl(options.address), ":", port);
  try {
    server->accept_thread_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  } catch (const std::system_error& e) {
    return annotate(absl::ResourceExhaustedError(absl::StrCat("start a thread: ", e.what())));
  }
  spdlog::info("streaming server on {} (SPDY/3.1 and WebSocket{})", server->base_url_,
               options.tls ? ", TLS" : "");
  return server;
}

void Server::AcceptLoop() {
  Core& core = *core_;
  while (!core.stopping) {
    // Join the connection threads that are done.
    {
      std::list<Core::Worker> finished;
      std::lock_guard<std::mutex> lock(core.mu);
      for (auto it = core.workers.begin(); it != core.workers.end();) {
        if (it->done) {
          auto next = std::next(it);
          finished.splice(finished.end(), core.workers, it);
          it = next;
        } else {
          ++it;
        }
      }
      for (Core::Worker& w : finished) w.thread.join();
    }
    struct pollfd p[2] = {{core.listener.get(), POLLIN, 0}, {core.stop_fd.get(), POLLIN, 0}};
    int n = ::poll(p, 2, 1000);
    if (n <= 0 || p[1].revents != 0) continue;
    UniqueFd fd(::accept4(core.listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) continue;
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard<std::mutex> lock(core.mu);
    if (core.connections >= core.options.max_streams) {
      // At the limit: a short answer from here, no thread for it.
      std::string busy = HttpResponse(
          503, absl::StrCat("too many streaming connections (", core.options.max_streams, ")"));
      (void)!::send(fd.get(), busy.data(), busy.size(), MSG_NOSIGNAL);
      continue;
    }
    ++core.connections;
    core.workers.emplace_back();
    Core::Worker* worker = &core.workers.back();
    try {
      worker->thread = std::thread([&core, worker, fd = std::move(fd)]() mutable {
        core.ServeConnection(std::move(fd));
        std::lock_guard<std::mutex> lock(core.mu);
        --core.connections;
        worker->done = true;
      });
    } catch (const std::system_error& e) {
      spdlog::warn("stream: start a connection thread: {}", e.what());
      --core.connections;
      core.workers.pop_back();
    }
  }
}

Server::~Server() { Stop(); }

void Server::Stop() {
  if (core_ == nullptr || core_->stopping.exchange(true)) return;
  uint64_t one = 1;
  (void)!::write(core_->stop_fd.get(), &one, sizeof(one));
  if (accept_thread_.joinable()) accept_thread_.join();
  std::list<Core::Worker> workers;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    workers.swap(core_->workers);
  }
  for (Core::Worker& w : workers) w.thread.join();
  core_->listener.Reset();
}

std::string Server::certificate_pem() const {
  return core_->tls != nullptr ? core_->tls->certificate_pem() : "";
}

int Server::active_sessions() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->sessions;
}

int Server::active_sessions_for(const std::string& target) const {
  return core_->SessionsFor(target);
}

absl::StatusOr<std::string> Server::Prepare(const std::string& target, absl::string_view path,
                                            PreparedRequest request) {
  if (core_->SessionsFor(target) >= core_->options.max_streams_per_container) {
    return absl::ResourceExhaustedError(absl::StrCat(core_->options.max_streams_per_container,
                                                     " streams are open already (the limit)"));
  }
  ASSIGN_OR_RETURN(std::string token, core_->tokens.Insert(std::move(request)));
  return absl::StrCat(base_url_, "/", path, "/", token);
}

absl::StatusOr<std::string> Server::PrepareExec(const ExecRequest& request) {
  auto annotate = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("exec in container ", request.container_id));
  };
  if (request.container_id.empty()) {
    return absl::InvalidArgumentError("exec: container_id is required");
  }
  if (request.cmd.empty()) return annotate(absl::InvalidArgumentError("cmd is required"));
  RETURN_IF_ERROR(
      annotate(ValidateStreams(request.tty, request.stdin, request.stdout, request.stderr)));
  RETURN_IF_ERROR(annotate(core_->backend->CheckContainer(request.container_id)));
  absl::StatusOr<std::string> url = Prepare(request.container_id, "exec", request);
  if (!url.ok()) return annotate(url.status());
  return url;
}

absl::StatusOr<std::string> Server::PrepareAttach(const AttachRequest& request) {
  auto annotate = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("attach to container ", request.container_id));
  };
  if (request.container_id.empty()) {
    return absl::InvalidArgumentError("attach: container_id is required");
  }
  RETURN_IF_ERROR(
      annotate(ValidateStreams(request.tty, request.stdin, request.stdout, request.stderr)));
  RETURN_IF_ERROR(annotate(core_->backend->CheckContainer(request.container_id)));
  absl::StatusOr<std::string> url = Prepare(request.container_id, "attach", request);
  if (!url.ok()) return annotate(url.status());
  return url;
}

absl::StatusOr<std::string> Server::PreparePortForward(const PortForwardRequest& request) {
  auto annotate = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("port forward to pod sandbox ", request.pod_sandbox_id));
  };
  if (request.pod_sandbox_id.empty()) {
    return absl::InvalidArgumentError("port forward: pod_sandbox_id is required");
  }
  for (int port : request.ports) {
    if (port < 1 || port > 65535) {
      return annotate(absl::InvalidArgumentError(absl::StrCat("port ", port, " is out of range")));
    }
  }
  RETURN_IF_ERROR(annotate(core_->backend->CheckPodSandbox(request.pod_sandbox_id)));
  absl::StatusOr<std::string> url =
      Prepare(absl::StrCat("pod/", request.pod_sandbox_id), "portforward", request);
  if (!url.ok()) return annotate(url.status());
  return url;
}

}  // namespace crib::stream
